"""Keep time with an Ableton Link session: its tempo, beat phase and start/stop, as a `Grid`.

The one module that knows the Link binding (LinkPython-extern, imported as `link`: synchronous
calls to Link's own session state, where aalink offers only asyncio waits). `FollowLink` is a
timing strategy like `FollowClock`; the engine never asks which one it has.

Link counts beats on its own clock (CLOCK_MONOTONIC_RAW on Linux, 0.25 s apart from
`time.monotonic` here), so the grid measures the offset to the engine's clock each time it takes
the session's state, once per engine pass. A grid position is a Link beat times 24 (a clock
pulse); beats whose number is a multiple of the quantum are the session's bar lines. A tempo set
by a peer moves the grid from the moment it comes: notes already placed keep their time, the next
grid point is on the new tempo. improv changes the session's tempo only when asked (`nudge_tempo`).

Network: an enabled Link discovers peers by multicast on every interface. Tests and benchmarks
enable it only inside a private network namespace (`unshare -n ../shared/netns.sh ...`).
"""

from __future__ import annotations

import argparse
import math
import queue
from collections.abc import Callable
from typing import Any

from improv.errors import ConfigError
from improv.live.clock import BPM_RANGE, PULSES_PER_QUARTER, Transport
from improv.live.protocol import TransportChanged
from improv.live.timing import ClockInput, FreeTime, Grid

INSTALL_HINT = "pip install 'improv[link]' (the LinkPython-extern package)"
MAX_OFFSET_BRACKET_S = 0.0005  # a reading of the two clocks taken further apart than this is not used


def new_session(bpm: float) -> Any:
    """A Link session of the binding, not yet enabled (so not yet on the network); ConfigError without it."""
    try:
        import link
    except ImportError:
        raise ConfigError(f"--sync link needs Ableton Link: {INSTALL_HINT}") from None
    return link.Link(bpm)


def check_available() -> None:
    """ConfigError (one line, how to install) if the Link binding is missing."""
    try:
        import link  # noqa: F401
    except ImportError:
        raise ConfigError(f"--sync link needs Ableton Link: {INSTALL_HINT}") from None


def link_settings(args: argparse.Namespace, config: Any) -> tuple[float, int]:
    """(tempo, quantum) of the session: command line over config file; the binding checked when asked for."""
    if args.sync == "link":
        check_available()
    tempo, quantum = getattr(args, "link_tempo", None), getattr(args, "link_quantum", None)
    return (tempo if tempo is not None else config.link_tempo, quantum if quantum is not None else config.link_quantum)


class LinkGrid:
    """The session's timeline laid on the engine's clock, as last taken by `refresh`."""

    def __init__(self, session: Any, quantum: int, clock: Callable[[], float]) -> None:
        self.session = session
        self.beats_per_bar = quantum
        self._clock = clock
        self._link_clock = session.clock()
        self._state: Any = None
        self._offset_s = 0.0  # the engine's clock minus Link's
        self.peers = 0
        # Someone in the session started or stopped it: from then on start/stop counts. (A peer that
        # joins is not told a state set before it came, only changes: a stop shows first as a new time.)
        self.transport_seen = False
        self._first_change_us: int | None = None

    @property
    def ready(self) -> bool:
        return self._state is not None

    def refresh(self) -> None:
        """Take the session's state and the clocks' offset now (the engine thread, once a pass)."""
        before = self._clock()
        micros = self._link_clock.micros()
        after = self._clock()
        if after - before <= MAX_OFFSET_BRACKET_S or self._state is None:
            self._offset_s = (before + after) / 2 - micros / 1e6
        state = self._state = self.session.captureAppSessionState()
        self.peers = self.session.numPeers()
        changed_us = state.timeForIsPlaying()
        if self._first_change_us is None:
            self._first_change_us = changed_us
        if state.isPlaying() or changed_us != self._first_change_us:
            self.transport_seen = True

    def _micros(self, t: float) -> int:
        return round((t - self._offset_s) * 1e6)

    @property
    def tempo(self) -> float:
        return float(self._state.tempo())

    @property
    def pulse_s(self) -> float | None:
        return 60.0 / (self.tempo * PULSES_PER_QUARTER) if self._state is not None else None

    def pulse_at(self, t: float) -> float:
        return float(self._state.beatAtTime(self._micros(t), self.beats_per_bar)) * PULSES_PER_QUARTER

    def time_of(self, pulse: float) -> float:
        micros = self._state.timeAtBeat(pulse / PULSES_PER_QUARTER, self.beats_per_bar)
        return float(micros) / 1e6 + self._offset_s

    def running_at(self, now: float) -> bool:
        """Playing, as the session's start/stop says (from the moment it says); a session nobody ever
        started (no peer uses start/stop sync) does not stop answers."""
        state = self._state
        if state is None:
            return False
        if not self.transport_seen:
            return True
        changed_at = float(state.timeForIsPlaying()) / 1e6 + self._offset_s
        return bool(state.isPlaying()) == (now >= changed_at)

    def transport(self, now: float) -> Transport:
        if self._state is None:
            return Transport(None, False, 1, 1, self.beats_per_bar, False, self.peers)
        beat = self.pulse_at(now) / PULSES_PER_QUARTER
        phase = float(self._state.phaseAtTime(self._micros(now), self.beats_per_bar))
        bar = max(math.floor(beat / self.beats_per_bar + 1e-9), 0) + 1
        in_bar = min(int(phase + 1e-9), self.beats_per_bar - 1) + 1
        return Transport(self.tempo, self.running_at(now), bar, in_bar, self.beats_per_bar, False, self.peers)

    def set_tempo(self, bpm: float, now: float) -> float:
        """Move the whole session to `bpm` (held to BPM_RANGE) from now; returns the tempo set."""
        bpm = min(max(bpm, BPM_RANGE[0]), BPM_RANGE[1])
        state = self.session.captureAppSessionState()
        state.setTempo(bpm, self._micros(now))
        self.session.commitAppSessionState(state)
        self.refresh()
        return bpm


class FollowLink(FreeTime):
    """Keep time with an Ableton Link session (a band of laptops, phones and DAWs)."""

    def __init__(self, start_bpm: float, quantum: int, events: queue.SimpleQueue[Any],
                 wake: Callable[[], None], clock: Callable[[], float]) -> None:
        super().__init__()
        self.link = LinkGrid(new_session(start_bpm), quantum, clock)
        self._events = events
        self._wake = wake
        self._shown: tuple[Any, ...] | None = None  # what the front end was last told

    def grid(self) -> Grid | None:
        return self.link if self.link.ready else None

    def start(self, now: float) -> None:
        session = self.link.session
        # A peer's start, stop or arrival wakes the engine: a stop silences the answer at once.
        session.setStartStopCallback(lambda playing: self._wake())
        session.setNumPeersCallback(lambda peers: self._wake())
        session.startStopSyncEnabled = True
        session.enabled = True
        self.tick(now)

    def tick(self, now: float) -> ClockInput | None:
        grid = self.link
        grid.refresh()
        beat = math.floor(grid.pulse_at(now) / PULSES_PER_QUARTER)
        shown = (round(grid.tempo, 2), grid.running_at(now), grid.peers, beat)
        before, self._shown = self._shown, shown
        if shown == before:
            return None
        if before is None or shown[0] != before[0]:
            self._follow_grid_tempo()
        self._events.put(TransportChanged(grid.transport(now)))
        return "stop" if before is not None and before[1] and not shown[1] else None

    def next_due(self) -> float | None:
        """The next beat: the front end hears of each one on time."""
        grid = self.link
        if not grid.ready or self._shown is None:
            return None
        return grid.time_of((self._shown[3] + 1) * PULSES_PER_QUARTER)

    def stop(self) -> None:
        self.link.session.enabled = False  # leave the session

    def may_answer(self, now: float) -> bool:
        return self.link.ready and self.link.running_at(now)  # the band stopped: silence until it starts again

    def nudge_tempo(self, step_bpm: float, now: float) -> str:
        bpm = self.link.set_tempo(self.link.tempo + step_bpm, now)
        self._follow_grid_tempo()
        return f"Link session tempo {bpm:.1f} BPM"
