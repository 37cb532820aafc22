"""When answers play: in free time, or on a clock's grid. One strategy, chosen once when the engine starts.

`FreeTime` follows the player: the model's time scale is the player's pulse (the median interval
between their onsets over `REFERENCE_STEP_S`). `FollowClock` and `LeadClock` keep time with a MIDI
clock, followed or sent: once the grid is known, the time scale is its beat and an answer's notes
wait for their grid points. The engine never asks which one it has; it calls the same methods.

A grid is anything with the small `Grid` interface below (`improv.live.clock` has two;
`improv.live.ableton_link` lays an Ableton Link session's timeline as a third, with its strategy).
"""

from __future__ import annotations

import math
import queue
import statistics
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

from improv.live.clock import PULSES_PER_QUARTER, ClockFollower, ClockMaster, Transport
from improv.live.protocol import TransportChanged
from improv.midi.status import CLOCK, CONTINUE, SONG_POSITION, START, STOP

REFERENCE_STEP_S = 0.25  # a typical non-chord step of the training data at notated tempo
TEMPO_RANGE = (0.3, 3.5)
SYNC_LEAD_S = 0.004  # a synced note is placed on a grid point at least this far ahead
LATE_NOTE_S = 0.010  # an answer note sent later than this after its time counts as late
IOI_MEMORY = 16  # the player's last onset intervals the pulse is the median of
CLOCK_STATUSES = frozenset((CLOCK, START, CONTINUE, STOP, SONG_POSITION))

ClockInput = Literal["not clock", "clock", "stop"]


class Grid(Protocol):
    """A musical grid in clock pulses (24 per quarter note) laid on the engine's clock."""

    beats_per_bar: int

    @property
    def pulse_s(self) -> float | None:
        """The length of a pulse (a beat is `PULSES_PER_QUARTER` of them); None until the tempo is known."""

    def pulse_at(self, t: float) -> float:
        """Where on the grid time `t` is, in pulses since the song's start."""

    def time_of(self, pulse: float) -> float:
        """When grid position `pulse` comes (or came)."""

    def running_at(self, now: float) -> bool:
        """Whether the transport is running: answers play only while it is."""

    def transport(self, now: float) -> Transport:
        """What a front end shows: tempo, running, bar and beat."""


def tempo_factor(beat_s: float) -> float:
    """The model's time scale for a beat or pulse of `beat_s` seconds, held to TEMPO_RANGE."""
    return min(max(beat_s / REFERENCE_STEP_S, TEMPO_RANGE[0]), TEMPO_RANGE[1])


class FreeTime:
    """No clock: answers keep the player's time."""

    def __init__(self) -> None:
        self.tempo_factor = 1.0  # seconds of the player's time per second of the model's
        self._iois: deque[float] = deque(maxlen=IOI_MEMORY)

    def grid(self) -> Grid | None:
        """The grid answers keep to, once it is known; None in free time."""
        return None

    def player_onset(self, ioi: float) -> None:
        """The player struck a chord `ioi` seconds after the one before."""
        self._iois.append(ioi)
        if self.grid() is None:  # with a clock, the clock sets the time scale
            self.tempo_factor = tempo_factor(statistics.median(self._iois))

    def player_pulse_s(self) -> float | None:
        """The player's pulse: the median interval between their recent onsets."""
        return statistics.median(self._iois) if self._iois else None

    def feed(self, data: Sequence[int], t: float) -> ClockInput:
        """An input message: a clock message is taken (and "stop" returned for a Stop) when following a clock."""
        return "not clock"

    def start(self, now: float) -> None:
        """The engine's loop begins."""

    def tick(self, now: float) -> ClockInput | None:
        """Once per pass: send the clock's pulses, report a transport that started or stopped ("stop": silence now)."""
        return None

    def next_due(self) -> float | None:
        """When `tick` has something to do next (None: nothing scheduled)."""
        return None

    def stop(self) -> None:
        """The engine stops: a clock improv sends stops too."""

    def may_answer(self, now: float) -> bool:
        """Whether an answer may begin now (not while the band's clock is stopped)."""
        return True

    def nudge_tempo(self, step_bpm: float, now: float) -> str:
        """Move a shared session's tempo by `step_bpm`; what happened, in a line for the player."""
        return "no shared tempo to nudge: start improv with --sync link"

    def running_at(self, now: float) -> bool:
        """Whether an answer under way may go on (a grid that stopped ends it)."""
        grid = self.grid()
        return grid is None or grid.running_at(now)

    def presample_s(self, wanted_s: float) -> float:
        """How long before a gap ends an answer's opening may be sampled (on a grid it waits for its point)."""
        return wanted_s if self.grid() is None else 0.0

    def grid_pulse(self, last_pulse: float | None, step_s: float, chord_tone: bool, now: float, quantize: int | None,
                   reply_on: str) -> float | None:
        """Grid position of a sampled answer note, or None in free time (the caller places it).

        The first starts on the next beat or bar (or now); the others follow the model's step,
        rounded to the quantize grid, chord tones on their chord's point, other notes at least
        one grid point later.
        """
        grid = self.grid()
        if grid is None:
            return None
        q = quantize
        if last_pulse is None:
            earliest = grid.pulse_at(now + SYNC_LEAD_S)
            unit = {"beat": PULSES_PER_QUARTER, "bar": PULSES_PER_QUARTER * grid.beats_per_bar}.get(reply_on, q)
            return earliest if unit is None else math.ceil(earliest / unit) * unit
        assert grid.pulse_s is not None
        if chord_tone:
            return last_pulse
        target = last_pulse + step_s * self.tempo_factor / grid.pulse_s
        if q is None:
            return target
        return max(round(target / q), round(last_pulse / q) + 1) * q

    def grid_onset(self, pulse: float, now: float, lookahead_s: float, quantize: int | None) -> tuple[float, float] | None:
        """(onset, pulse) of a note waiting for grid point `pulse` once it is within the lookahead, else None.

        The time comes from the clock as it is then, so a tempo change in between moves the note
        with the grid; a point already missed (a stall, or the tempo rushed) becomes the next one.
        """
        grid = self.grid()
        if grid is None:  # cannot happen: a grid once known stays known
            return now, pulse
        onset = grid.time_of(pulse)
        if onset > now + lookahead_s:
            return None
        if onset < now - LATE_NOTE_S:
            q = quantize or 1
            pulse = math.ceil(grid.pulse_at(now + SYNC_LEAD_S) / q) * q
            onset = grid.time_of(pulse)
        return max(onset, now), pulse

    def grid_due(self, pulse: float, lookahead_s: float, now: float) -> float:
        """When to wake for a note waiting for grid point `pulse`."""
        grid = self.grid()
        return grid.time_of(pulse) - lookahead_s if grid is not None else now + 0.01

    def _follow_grid_tempo(self) -> None:
        """With a clock, the model's time scale follows the clock's tempo, not the player's pulse."""
        grid = self.grid()
        if grid is not None and grid.pulse_s is not None:
            self.tempo_factor = tempo_factor(grid.pulse_s * PULSES_PER_QUARTER / 2)


class FollowClock(FreeTime):
    """Keep time with the MIDI clock that comes in (a band, a DAW, a drum machine)."""

    def __init__(self, events: queue.SimpleQueue[Any]) -> None:
        super().__init__()
        self.follower = ClockFollower()
        self._events = events
        self._running = False  # as last told to the front end

    def grid(self) -> Grid | None:
        return self.follower if self.follower.locked else None

    def feed(self, data: Sequence[int], t: float) -> ClockInput:
        if not data or data[0] not in CLOCK_STATUSES:
            return "not clock"
        follower = self.follower
        beat = follower.position // PULSES_PER_QUARTER
        change = follower.feed(data[0], t, tuple(data[1:]))
        if change is not None or (data[0] == CLOCK and follower.position // PULSES_PER_QUARTER != beat):
            self._follow_grid_tempo()
            self._events.put(TransportChanged(follower.transport(t)))
        return "stop" if change == "stop" else "clock"  # Stop means silence

    def tick(self, now: float) -> ClockInput | None:
        if self.follower.running_at(now) != self._running:
            self._running = not self._running  # Start, Stop, or the clock came or went
            self._events.put(TransportChanged(self.follower.transport(now)))
        return None  # a Stop came as input (`feed`); a clock that went away ends the answer in its pass

    def may_answer(self, now: float) -> bool:
        return self.follower.running_at(now)  # the band stopped: silence until it starts again


class LeadClock(FreeTime):
    """Be the clock: send Start, then pulses at a fixed tempo, and keep time with them."""

    def __init__(self, bpm: float, send_now: Callable[[Sequence[int]], None], events: queue.SimpleQueue[Any]) -> None:
        super().__init__()
        self.bpm = bpm
        self.master: ClockMaster | None = None  # made when the loop starts: its first pulse is then
        self._send_now = send_now
        self._events = events

    def grid(self) -> Grid | None:
        return self.master

    def start(self, now: float) -> None:
        if self.master is None:
            self.master = ClockMaster(self.bpm, now)
            self._send_now([START])
            self._follow_grid_tempo()

    def tick(self, now: float) -> ClockInput | None:
        if self.master is None:
            self.start(now)
        master = self.master
        assert master is not None
        if not master.playing:
            return None
        before = master.next_pulse
        for _ in range(master.due(now)):
            self._send_now([CLOCK])
        if master.next_pulse // PULSES_PER_QUARTER != before // PULSES_PER_QUARTER:
            self._events.put(TransportChanged(master.transport(now)))
        return None

    def next_due(self) -> float | None:
        return self.master.next_due() if self.master is not None else None

    def stop(self) -> None:
        if self.master is not None and self.master.playing:
            self.master.playing = False
            self._send_now([STOP])
