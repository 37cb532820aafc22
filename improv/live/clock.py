"""MIDI beat clock: follow a band's clock, or be the clock; the grid replies land on.

Pure bookkeeping with the time passed in, so it is tested on a fake clock.
Positions are counted in clock pulses (24 per quarter note) from the song's
start; a grid of `division` pulses (6 for 1/16, 8 for 1/8T) is the set of
positions that are multiples of it.

`ClockFollower` estimates tempo and phase with a least-squares line through
the last four beats' pulses (jitter averages out), and starts a new line when
three pulses in a row miss the current one by more than the jitter allows:
a tempo change is followed within a few pulses, not a beat later.

Pulses get lost on the way (a JACK listener missed 0-5 of 326), so once the line
is known a pulse is numbered by when it arrives, not by counting: one that lands
on the line two pulses after the last counts as two. Pulses also arrive late, in
bursts after the receiving thread stalled, and a late one can pass for a gap; the
pulses that come right behind it count as none (`ClockFollower._advance`). A run
of gaps is a slower tempo, not lost pulses. A Song Position Pointer sets the
position outright. On a fake clock with one pulse in 30 lost, and with stalls of
up to 80 ms once in 40 pulses besides, the grid stays within 1 ms of the band's
(counting pulses, it drifted a pulse per pulse lost).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from improv.midi.status import CLOCK, CONTINUE, SONG_POSITION, START, STOP

PULSES_PER_QUARTER = 24
PULSES_PER_SPP_UNIT = 6  # a Song Position Pointer counts sixteenth notes

FIT_PULSES = 96  # four beats of pulses in the tempo fit (a tempo change restarts it)
MIN_FIT_PULSES = 3
CHANGE_PULSES = 3  # this many pulses off the line in a row, further each time, mean the tempo changed
MIN_MISS_S = 0.003  # ... off by more than this (or a quarter of a pulse, if larger)
STALE_S = 0.5  # no pulse for this long: the clock is gone
MAX_LOST_PULSES = 3  # a pulse on the line at most this many pulses late stands for the ones lost before it
GAP_CHANGE_PULSES = 4
AHEAD_PULSES = 3  # this many pulses in a row on the line one behind the count: the count was ahead  # this many gaps in a row are a slower tempo (1 pulse in 30 lost: once in 800,000)
BPM_RANGE = (20.0, 400.0)

QUANTIZE = {
    "off": None,
    "1/4": 24, "1/8": 12, "1/16": 6, "1/32": 3,
    "1/4T": 16, "1/8T": 8, "1/16T": 4,
}
REPLY_ON = ("beat", "bar", "now")


def parse_quantize(text: str) -> int | None:
    """`1/16` -> 6 pulses, `1/8T` -> 8, `off` -> None; anything else is a one-line ValueError."""
    for name, pulses in QUANTIZE.items():
        if text.strip().lower() == name.lower():
            return pulses
    raise ValueError(f"unknown grid {text!r}: use one of {', '.join(QUANTIZE)}")


def bpm_of(pulse_s: float) -> float:
    return 60.0 / (pulse_s * PULSES_PER_QUARTER)


def pulse_seconds(bpm: float) -> float:
    if not (math.isfinite(bpm) and BPM_RANGE[0] <= bpm <= BPM_RANGE[1]):
        raise ValueError(f"tempo must be {BPM_RANGE[0]:g}-{BPM_RANGE[1]:g} BPM, got {bpm}")
    return 60.0 / (bpm * PULSES_PER_QUARTER)


@dataclass(frozen=True, slots=True)
class Transport:
    """What a front end shows: tempo, whether the band is playing, where in the bar."""

    bpm: float | None
    running: bool
    bar: int  # from 1
    beat: int  # from 1
    beats_per_bar: int
    master: bool  # improv sends the clock
    peers: int | None = None  # other peers in an Ableton Link session; None: not a Link session


class Grid:
    """A line from pulse positions to times: `time_of(pulse)` and back."""

    beats_per_bar = 4

    def __init__(self) -> None:
        self._origin_t: float | None = None  # time of pulse position `_origin_pulse`
        self._origin_pulse = 0.0
        self.pulse_s: float | None = None

    @property
    def bpm(self) -> float | None:
        return bpm_of(self.pulse_s) if self.pulse_s else None

    @property
    def locked(self) -> bool:
        return self._origin_t is not None and self.pulse_s is not None

    def running_at(self, now: float) -> bool:
        raise NotImplementedError

    def time_of(self, pulse: float) -> float:
        assert self._origin_t is not None and self.pulse_s is not None
        return self._origin_t + (pulse - self._origin_pulse) * self.pulse_s

    def pulse_at(self, t: float) -> float:
        assert self._origin_t is not None and self.pulse_s is not None
        return self._origin_pulse + (t - self._origin_t) / self.pulse_s

    def next_point(self, t: float, division: int) -> float:
        """The first grid time at or after `t` on a grid of `division` pulses."""
        pulse = self.pulse_at(t)
        k = math.ceil(pulse / division - 1e-9)
        return self.time_of(k * division)

    def nearest_point(self, t: float, division: int) -> float:
        return self.time_of(round(self.pulse_at(t) / division) * division)

    def transport(self, now: float, master: bool = False) -> Transport:
        if not self.locked:
            return Transport(None, False, 1, 1, self.beats_per_bar, master)
        beats = max(math.floor(self.pulse_at(now) / PULSES_PER_QUARTER + 1e-6), 0)
        return Transport(self.bpm, self.running_at(now), beats // self.beats_per_bar + 1,
                         beats % self.beats_per_bar + 1, self.beats_per_bar, master)


class ClockFollower(Grid):
    """The tempo and position of an incoming MIDI clock."""

    def __init__(self) -> None:
        super().__init__()
        self.position = 0  # pulses since the song's start (what the next pulse will be, minus one)
        self._fit: deque[tuple[int, float]] = deque(maxlen=FIT_PULSES)  # (position, time)
        self._recent_misses: list[float] = []  # consecutive misses, growing on one side
        self._missed: list[tuple[int, float]] = []
        self._transport_seen = False
        self._playing = False
        self._last_pulse_t: float | None = None
        self.pulses = 0
        self.lost = 0  # pulses taken as lost on the way (a gap in arrival times)
        self._gaps: list[tuple[int, float]] = []  # the pulses read as gaps in a row: (position before, time)
        self._credit = 0  # pulses counted for gaps that may yet arrive (held up, not lost)
        self._ahead = 0  # pulses in a row on the line where the one before them was

    def feed(self, status: int, t: float, data: tuple[int, ...] = ()) -> str | None:
        """One realtime or song-position message; returns "start", "stop" or "continue" when the transport changed."""
        if status == CLOCK:
            self._pulse(t)
            return None
        if status == START:
            self._transport_seen = self._playing = True
            self.position = -1  # the first pulse after Start is position 0
            self._restart_fit()
            return "start"
        if status == CONTINUE:
            self._transport_seen = self._playing = True
            return "continue"
        if status == STOP:
            self._transport_seen = True
            self._playing = False
            return "stop"
        if status == SONG_POSITION and len(data) >= 2:
            sixteenths = (data[0] & 0x7F) | ((data[1] & 0x7F) << 7)
            self.position = sixteenths * PULSES_PER_SPP_UNIT - 1
            self._restart_fit()
        return None

    def running_at(self, now: float) -> bool:
        """Playing: after Start/Continue until Stop (or, for gear that sends no transport, while pulses come)."""
        fresh = self._last_pulse_t is not None and now - self._last_pulse_t <= STALE_S
        if self._transport_seen:
            return self._playing and fresh and self.locked
        return fresh and self.locked

    def _restart_fit(self) -> None:
        self._fit.clear()
        self._recent_misses = []
        self._missed = []
        self._gaps = []
        self._credit = 0
        self._ahead = 0

    def _tolerance_s(self) -> float:
        """How far from the line a pulse may land and still be on it."""
        assert self.pulse_s is not None
        return max(MIN_MISS_S, self.pulse_s / 4)

    def _advance(self, t: float) -> int:
        """How many song positions the pulse arriving at `t` moves: 1, more after a gap, 0 for a late one's twin.

        A pulse held up on the way can land on the line too, a whole number of pulses late, and pass
        for a gap. So a gap's pulses stay owed (`_credit`) until a pulse lands on the line one after
        the last; meanwhile a pulse arriving before the next one is due was held up with the one
        before it, and pays one back. Pulses on the line one behind the count, several in a row,
        mean it ran ahead (a late one passed for on time): the line's number is taken.
        """
        if not self.locked or len(self._fit) < MIN_FIT_PULSES:
            return 1
        assert self.pulse_s is not None
        ahead = (t - self.time_of(self.position)) / self.pulse_s  # pulses after the last one counted
        k = round(ahead)
        on_line = abs(ahead - k) * self.pulse_s <= min(self._tolerance_s(), 0.4 * self.pulse_s)
        if k <= 0 and self._credit > 0:  # before the next one is due: held up with the one before
            self._credit = max(self._credit - 1, 0)
            self.lost = max(self.lost - 1, 0)
            return 0
        if on_line and k <= 0:  # on the line, but not after the last one counted: was one counted twice?
            self._ahead += 1
            if self._ahead >= AHEAD_PULSES:  # a run of them, on time: the count is ahead; take the line's
                self._ahead = 0
                return k
            return 1
        self._ahead = 0
        if not (on_line and 2 <= k <= MAX_LOST_PULSES + 1):
            if on_line and k == 1:
                self._credit = 0  # on time, one after the last: the count stands
            self._gaps = []
            return 1
        self._gaps.append((self.position, t))
        if len(self._gaps) >= GAP_CHANGE_PULSES:  # not lost pulses: the tempo slowed to a multiple
            self._renumber_gaps()
            return 0
        self._credit += k - 1
        self.lost += k - 1
        return k

    def _renumber_gaps(self) -> None:
        """The gaps in a row were single pulses of a slower tempo: count them one each and fit them alone."""
        base = self._gaps[0][0]
        times = [t for _, t in self._gaps]
        self.lost = max(self.lost - ((self.position - base) - (len(times) - 1)), 0)  # the earlier ones' count
        self._credit = 0
        self._fit.clear()
        self._fit.extend((base + 1 + k, t) for k, t in enumerate(times))
        self.position = base + len(times)
        self._recent_misses = []
        self._missed = []
        self._gaps = []
        self._refit()

    def _pulse(self, t: float) -> None:
        self.pulses += 1
        if self._last_pulse_t is not None and t - self._last_pulse_t > STALE_S:
            self._restart_fit()  # the clock stopped and came back: the old line means nothing
        self._last_pulse_t = t
        if self._transport_seen and not self._playing:
            return  # a stopped sequencer may keep its clock running: it does not move the song
        step = self._advance(t)
        if step <= 0:
            self.position += step
            return  # counted already (or renumbered with its run of gaps)
        self.position += step
        if self.locked and len(self._fit) >= MIN_FIT_PULSES:
            assert self.pulse_s is not None
            miss = t - self.time_of(self.position)
            if abs(miss) > self._tolerance_s():
                # A tempo change misses by more each pulse, always on one side; a late
                # delivery misses once (or at random). Only the first moves the line.
                previous = self._recent_misses[-1] if self._recent_misses else None
                if previous is not None and (previous > 0) == (miss > 0) and abs(miss) > abs(previous):
                    self._recent_misses.append(miss)
                else:
                    self._recent_misses = [miss]
                self._missed.append((self.position, t))
                if len(self._recent_misses) >= CHANGE_PULSES:  # a new tempo: keep only the pulses that show it
                    self._fit.clear()
                    self._fit.extend(self._missed[-CHANGE_PULSES:])
                    self._recent_misses = []
                    self._missed = []
                    self._refit()
                return  # an outlier stays out of the fit
            self._recent_misses = []
            self._missed = []
        self._fit.append((self.position, t))
        self._refit()

    def _refit(self) -> None:
        n = len(self._fit)
        if n < 2:
            if n == 1 and self.pulse_s is not None:  # keep the old tempo, move the phase
                self._origin_pulse, self._origin_t = self._fit[0]
            return
        mean_p = sum(p for p, _ in self._fit) / n
        mean_t = sum(t for _, t in self._fit) / n
        spread = sum((p - mean_p) ** 2 for p, _ in self._fit)
        slope = sum((p - mean_p) * (t - mean_t) for p, t in self._fit) / spread
        low, high = pulse_seconds(BPM_RANGE[1]), pulse_seconds(BPM_RANGE[0])
        if not (low <= slope <= high):
            return
        self.pulse_s = slope
        self._origin_pulse, self._origin_t = mean_p, mean_t


class ClockMaster(Grid):
    """improv's own clock at a fixed tempo: the pulses to send and the grid they make."""

    def __init__(self, bpm: float, start_t: float) -> None:
        super().__init__()
        self.pulse_s = pulse_seconds(bpm)
        self._origin_t = start_t
        self._origin_pulse = 0.0
        self.next_pulse = 0
        self.playing = True

    def running_at(self, now: float) -> bool:
        return self.playing

    def transport(self, now: float, master: bool = True) -> Transport:
        return super().transport(now, master)

    def due(self, now: float) -> int:
        """How many pulses are due by `now` (and count them as sent)."""
        count = 0
        while self.time_of(self.next_pulse) <= now:
            self.next_pulse += 1
            count += 1
        return count

    def next_due(self) -> float:
        return self.time_of(self.next_pulse)
