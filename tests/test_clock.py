"""The beat clock's arithmetic on a fake clock: tempo, phase, tempo changes, transport."""

from __future__ import annotations

import math
import random

import pytest

from improv.live.clock import (
    CLOCK, CONTINUE, SONG_POSITION, START, STOP, ClockFollower, ClockMaster, parse_quantize, pulse_seconds,
)


def send_clock(follower: ClockFollower, bpm: float, start_t: float, pulses: int, jitter_s: float = 0.0,
               rng: random.Random | None = None, first_pulse: int = 0) -> list[float]:
    """Ideal pulse times (the band's), fed with jitter; returns the ideal times."""
    rng = rng or random.Random(0)
    period = pulse_seconds(bpm)
    ideal = [start_t + (first_pulse + k) * period for k in range(pulses)]
    for t in ideal:
        follower.feed(CLOCK, t + rng.uniform(-jitter_s, jitter_s))
    return ideal


@pytest.mark.parametrize("bpm", [60.0, 90.0, 140.0, 200.0])
def test_tempo_and_phase_are_found_through_jitter(bpm: float) -> None:
    follower = ClockFollower()
    follower.feed(START, 0.0)
    ideal = send_clock(follower, bpm, 0.01, 96, jitter_s=0.001, rng=random.Random(int(bpm)))
    assert follower.bpm == pytest.approx(bpm, rel=0.005)
    # the next sixteenth and the next beat land on the ideal grid within a fraction of a millisecond
    now = ideal[-1] + 0.0001
    period = pulse_seconds(bpm)
    assert follower.next_point(now, 6) == pytest.approx(0.01 + 96 * period, abs=0.0007)
    assert follower.next_point(now, 24) == pytest.approx(0.01 + 96 * period, abs=0.0007)
    assert follower.next_point(now + period, 24) == pytest.approx(0.01 + 120 * period, abs=0.0008)


def test_a_tempo_change_is_followed_within_a_beat() -> None:
    follower = ClockFollower()
    follower.feed(START, 0.0)
    rng = random.Random(5)
    ideal = send_clock(follower, 90.0, 0.0, 48, jitter_s=0.001, rng=rng)
    change_t = ideal[-1] + pulse_seconds(140.0)
    period = pulse_seconds(140.0)
    for k in range(24):  # one beat at the new tempo
        follower.feed(CLOCK, change_t + k * period + rng.uniform(-0.001, 0.001))
    assert follower.bpm == pytest.approx(140.0, rel=0.01)
    next_beat = change_t + 24 * period
    assert follower.next_point(change_t + 23.5 * period, 24) == pytest.approx(next_beat, abs=0.001)


def test_song_position_and_bars() -> None:
    follower = ClockFollower()
    follower.feed(SONG_POSITION, 0.0, (16, 0))  # sixteenth 16 = bar 2, beat 1
    follower.feed(CONTINUE, 0.0)
    send_clock(follower, 120.0, 0.0, 30)
    transport = follower.transport(29 * pulse_seconds(120.0))
    assert follower.position == 16 * 6 + 29
    assert (transport.bar, transport.beat) == (2, 2)
    assert transport.running


def test_stop_stops_and_start_resets_the_position() -> None:
    follower = ClockFollower()
    follower.feed(START, 0.0)
    send_clock(follower, 120.0, 0.0, 50)
    t = 50 * pulse_seconds(120.0)
    assert follower.running_at(t)
    assert follower.feed(STOP, t) == "stop"
    assert not follower.running_at(t)
    send_clock(follower, 120.0, t, 10)  # a stopped machine that keeps sending clock: position stays
    assert follower.position == 49
    assert follower.feed(START, t + 0.3) == "start"
    send_clock(follower, 120.0, t + 0.31, 5)
    assert follower.position == 4 and follower.running_at(t + 0.31 + 5 * pulse_seconds(120.0))


def test_a_clock_without_transport_runs_while_it_ticks() -> None:
    follower = ClockFollower()
    assert not follower.running_at(0.0)
    send_clock(follower, 100.0, 0.0, 10)
    last = 9 * pulse_seconds(100.0)
    assert follower.running_at(last + 0.1)
    assert not follower.running_at(last + 1.0)  # the clock went away


def test_master_sends_pulses_on_time_without_drift() -> None:
    master = ClockMaster(120.0, start_t=1.0)
    sent = sum(master.due(1.0 + k * 0.013) for k in range(1000))  # polled at an odd rate
    assert sent == int(12.987 / pulse_seconds(120.0)) + 1
    assert master.next_due() == pytest.approx(1.0 + sent * pulse_seconds(120.0))


def test_quantize_names() -> None:
    assert parse_quantize("1/16") == 6
    assert parse_quantize("1/8T") == 8
    assert parse_quantize("off") is None
    with pytest.raises(ValueError, match="unknown grid"):
        parse_quantize("1/5")
    with pytest.raises(ValueError, match="BPM"):
        pulse_seconds(0.0)


def test_a_late_delivery_does_not_move_the_grid() -> None:
    follower = ClockFollower()
    follower.feed(START, 0.0)
    period = pulse_seconds(140.0)
    for k in range(60):
        late = 0.008 if k in (40, 41, 50) else 0.0  # the receiving thread was busy: a few pulses arrive late
        follower.feed(CLOCK, k * period + late)
    assert follower.bpm == pytest.approx(140.0, rel=1e-6)
    assert follower.next_point(59.5 * period, 6) == pytest.approx(60 * period, abs=1e-6)


def lossy_clock(follower: ClockFollower, bpm: float, pulses: int, drop_one_in: int, seed: int,
                jitter_s: float = 0.001, start_t: float = 0.0) -> list[int]:
    """Start, then `pulses` pulses of which one in `drop_one_in` (at random) never arrives; returns the dropped."""
    rng = random.Random(seed)
    period = pulse_seconds(bpm)
    follower.feed(START, start_t)
    dropped = []
    for k in range(pulses):
        if k > 8 and rng.randrange(drop_one_in) == 0:
            dropped.append(k)
            continue
        follower.feed(CLOCK, start_t + k * period + rng.uniform(-jitter_s, jitter_s))
    return dropped


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("bpm", [90.0, 120.0, 200.0])
def test_lost_pulses_do_not_move_the_grid(bpm: float, seed: int) -> None:
    """One pulse in 30 lost at random: every position stays where the band's clock has it."""
    follower = ClockFollower()
    dropped = lossy_clock(follower, bpm, 400, 30, seed)
    period = pulse_seconds(bpm)
    assert dropped  # the clock did lose pulses
    assert follower.position == 399
    assert follower.lost == len([k for k in dropped if k < 399])
    assert follower.bpm == pytest.approx(bpm, rel=0.005)
    assert follower.next_point(399.5 * period, 6) == pytest.approx(402 * period, abs=0.0007)


def test_several_pulses_lost_in_a_row_count_once_each() -> None:
    follower = ClockFollower()
    follower.feed(START, 0.0)
    period = pulse_seconds(120.0)
    for k in [*range(40), *range(43, 60)]:  # 40, 41, 42 lost
        follower.feed(CLOCK, k * period)
    assert follower.position == 59 and follower.lost == 3


def test_a_late_pulse_taken_for_a_gap_is_counted_once_when_its_twin_arrives() -> None:
    """A pulse delivered a whole pulse late looks like a gap; the next one, arriving with it, counts as nothing."""
    follower = ClockFollower()
    follower.feed(START, 0.0)
    period = pulse_seconds(120.0)
    for k in range(40):
        follower.feed(CLOCK, k * period)
    follower.feed(CLOCK, 41 * period)  # pulse 40, held up until pulse 41's time
    follower.feed(CLOCK, 41 * period + 0.0003)  # pulse 41, right behind it
    for k in range(42, 60):
        follower.feed(CLOCK, k * period)
    assert follower.position == 59 and follower.lost == 0
    assert follower.next_point(59.5 * period, 6) == pytest.approx(60 * period, abs=1e-6)


def test_a_tempo_halved_is_a_new_tempo_not_lost_pulses() -> None:
    follower = ClockFollower()
    follower.feed(START, 0.0)
    fast = pulse_seconds(140.0)
    for k in range(48):
        follower.feed(CLOCK, k * fast)
    slow = pulse_seconds(70.0)
    change_t = 47 * fast + slow
    for k in range(24):
        follower.feed(CLOCK, change_t + k * slow)
    assert follower.bpm == pytest.approx(70.0, rel=0.01)
    assert follower.position == 47 + 24 and follower.lost == 0


def test_song_position_re_phases_after_lost_pulses() -> None:
    """A Song Position Pointer sets the position outright, whatever was lost before it."""
    follower = ClockFollower()
    lossy_clock(follower, 120.0, 100, 10, 1)
    follower.feed(STOP, 1.0)
    follower.feed(SONG_POSITION, 1.0, (32, 0))  # bar 3
    follower.feed(CONTINUE, 1.01)
    period = pulse_seconds(120.0)
    for k in range(12):
        follower.feed(CLOCK, 1.02 + k * period)
    assert follower.position == 32 * 6 + 11
    transport = follower.transport(1.02 + 11 * period)
    assert (transport.bar, transport.beat) == (3, 1)
    assert follower.next_point(1.02 + 11.5 * period, 6) == pytest.approx(1.02 + 12 * period, abs=1e-6)


@pytest.mark.parametrize("seed", range(10))
def test_pulses_held_up_and_delivered_in_a_burst_are_numbered_right(seed: int) -> None:
    """A busy receiving thread stamps pulses late, several at once (stalls up to 80 ms, one in 40 pulses),
    while one pulse in 30 is lost: every pulse still gets the song position the band sent it at."""
    rng = random.Random(seed)
    period = pulse_seconds(120.0)
    follower = ClockFollower()
    follower.feed(START, 0.0)
    stall_until = -1.0
    sent = 0
    for k in range(600):
        t = k * period + rng.uniform(-0.001, 0.001)
        if k > 30 and rng.randrange(40) == 0:
            stall_until = t + rng.uniform(0.0, 0.080)
        if k > 8 and rng.randrange(30) == 0:
            continue  # lost on the way
        follower.feed(CLOCK, max(t, stall_until) + rng.uniform(0.0, 0.0002))
        sent = k
    assert follower.position == sent
    assert follower.next_point(sent * period + period / 2, 6) == pytest.approx(math.ceil((sent + 0.5) / 6) * 6 * period,
                                                                               abs=0.001)
