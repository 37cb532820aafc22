"""The engine thread asks to be scheduled first: real-time where the system allows it, else nice, and
the GIL's switch interval is shortened (`improv.live.priority`)."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from improv.live import priority
from improv.live.engine import Engine

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="no POSIX scheduling calls here")


@pytest.fixture
def switch_interval():
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def test_a_live_engine_thread_runs_real_time_where_allowed(tiny_model, switch_interval) -> None:
    engine = Engine(tiny_model, lambda message: None)
    engine.start(realtime=True)
    try:
        native_id = engine._thread.native_id  # type: ignore[union-attr]
        policy = os.sched_getscheduler(native_id)
        if engine.priority.startswith("real-time"):
            assert policy == os.SCHED_FIFO and os.sched_getparam(native_id).sched_priority == priority.REALTIME_PRIORITY
        else:  # refused (no rtprio limit): the engine says so and plays on
            assert policy == os.SCHED_OTHER and "refused" in engine.priority
        assert os.sched_getscheduler(0) == os.SCHED_OTHER  # only the engine's thread, not the caller's
        assert sys.getswitchinterval() <= priority.SWITCH_INTERVAL_S
    finally:
        engine.stop()


def test_an_engine_started_plainly_keeps_normal_scheduling(tiny_model, switch_interval) -> None:
    sys.setswitchinterval(0.005)
    engine = Engine(tiny_model, lambda message: None)
    engine.start()
    try:
        assert os.sched_getscheduler(engine._thread.native_id) == os.SCHED_OTHER  # type: ignore[union-attr]
        assert engine.priority == "normal priority" and sys.getswitchinterval() == 0.005
    finally:
        engine.stop()


def test_a_thread_not_started_is_left_alone(switch_interval) -> None:
    assert "not started" in priority.promote(threading.Thread(target=lambda: None))
