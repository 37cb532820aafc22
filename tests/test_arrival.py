"""Arrival times from the backend's delta times (`improv.midi.arrival`), on a made-up clock."""

from __future__ import annotations

import random

import pytest

from improv.midi.arrival import DRIFT, MAX_EARLY_S, ArrivalClock


def test_late_callbacks_do_not_make_late_arrivals() -> None:
    """Messages every 20 ms; the callback runs 0-15 ms late, once on time: from then on every time is right
    (to the creep the origin is allowed for clocks that drift apart, DRIFT a second)."""
    rng = random.Random(1)
    clock = ArrivalClock()
    true = [10.0 + 0.02 * i for i in range(200)]
    late = [0.0 if i == 3 else rng.uniform(0.0005, 0.015) for i in range(200)]
    got = [clock.arrival(t - p if i else 0.0, t + d) for i, (t, p, d) in enumerate(zip(true, [true[0]] + true, late))]
    assert all(t - 1e-9 <= g <= t + DRIFT * (t + d - true[3]) + 1e-9 for g, t, d in zip(got[3:], true[3:], late[3:]))
    assert all(t <= g <= t + late[i] for i, (g, t) in enumerate(zip(got[:3], true[:3])))  # never early, never later than seen
    stamps_error = max(late)
    assert stamps_error > 0.01  # what the stamps alone would have said


def test_a_clock_running_apart_is_followed() -> None:
    """The backend's clock runs 20 ppm slow against ours: the origin creeps along, within DRIFT a second."""
    clock = ArrivalClock()
    errors = []
    for i in range(3000):  # ten minutes, a message every 200 ms
        t = 0.2 * i
        got = clock.arrival(0.2 * (1 - 20e-6) if i else 0.0, t + 0.0002)
        errors.append(got - t)
    assert max(abs(e) for e in errors) < 0.001
    assert DRIFT > 20e-6


def test_a_broken_delta_re_anchors_on_the_stamp() -> None:
    """A port reopened behind our back restarts the deltas: a time far before its stamp is not believed."""
    clock = ArrivalClock()
    clock.arrival(0.0, 5.0)
    clock.arrival(0.1, 5.1)
    assert clock.arrival(0.0, 9.0) == pytest.approx(9.0)  # delta 0 after 3.9 s
    assert clock.arrival(0.05, 9.06) == pytest.approx(9.05)  # and it goes on from there
    assert MAX_EARLY_S < 1.0


def test_reset_forgets_the_origin() -> None:
    clock = ArrivalClock()
    clock.arrival(0.0, 1.0)
    clock.reset()
    assert clock.arrival(0.0, 50.0) == 50.0


def test_negative_deltas_count_as_none() -> None:
    clock = ArrivalClock()
    clock.arrival(0.0, 1.0)
    assert clock.arrival(-0.5, 1.0) == pytest.approx(1.0)
