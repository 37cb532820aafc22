"""Closing a session cannot hang the process: the MIDI library's close may stall with the GIL held."""

from __future__ import annotations

import subprocess
import sys
import time

STALL = """
import ctypes, sys, time
from improv.live.session import _exit_if_stalled
with _exit_if_stalled({seconds}):
    ctypes.PyDLL(None).sleep({sleep})  # a C call that keeps the GIL, like rtmidi's delete()
time.sleep({seconds} * 3)  # a watchdog still armed would end the process here
sys.exit(7)
"""


def run(seconds: float, sleep: int) -> tuple[int, float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", STALL.format(seconds=seconds, sleep=sleep)],
                          check=False, capture_output=True, text=True, timeout=60)
    return proc.returncode, time.monotonic() - started


def test_a_close_that_stalls_with_the_gil_held_still_ends_the_process() -> None:
    code, took = run(0.5, 30)
    assert code == 1
    assert took < 20  # the C sleep alone would take 30 s


def test_a_close_that_finishes_in_time_is_left_alone() -> None:
    code, _ = run(0.5, 0)
    assert code == 7  # the watchdog was cancelled: the code after the block ran and chose the status
