"""The player's side: their notes as they come, fed to the model as whole chords, and what answers learn from them.

Tempo and dynamics are normalised on the way in: the model was trained on notated music at fixed
tempi and notated dynamics, so the player's steps are divided by the timing's tempo factor and
their velocities centred on `REFERENCE_VELOCITY` before the model sees them.
"""

from __future__ import annotations

import queue
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from improv.live.call import CallNote
from improv.live.echo import EchoFilter
from improv.live.listener import NoteStarted, NoteTracker
from improv.live.output import Output
from improv.live.protocol import NotePlayed, PlayerNoteOn
from improv.live.settings import CHORD_MEMORY, KEY_LOCK_NOTES, EngineSettings
from improv.live.timing import FreeTime
from improv.model.rolling_seed import Constraints, Improviser
from improv.model.style import StyleMemory
from improv.music.events import Event

REFERENCE_VELOCITY = 80
CHORD_WINDOW_S = 0.035  # onsets closer than this are one chord
THRU_TAG = "thru"
STALE_CHECK_S = 0.5
CALL_NOTES = 64  # the most of a call the answer planner looks at (its last notes)


class Player:
    """The player's notes: tracked, sounded with thru, fed to the model, remembered for the answers' limits."""

    def __init__(self, settings: EngineSettings, improviser: Improviser, timing: FreeTime, output: Output,
                 echo: EchoFilter, events: queue.SimpleQueue[Any], clock: Callable[[], float]) -> None:
        self.settings = settings
        self.improviser = improviser
        self.timing = timing
        self.output = output
        self.echo = echo
        self.events = events
        self.clock = clock
        self.tracker = NoteTracker()
        self.style = StyleMemory(improviser.bins.n_step)
        self.pending: list[list[Any]] = []  # [start, pitch, velocity, end | None], onset order
        self.last_onset: float | None = None  # real time of the last event the model saw (the player's or an answer's)
        self.velocity = float(REFERENCE_VELOCITY)  # how loud the player plays of late
        self.new_notes = 0  # notes struck since the last answer began
        self.recent: deque[tuple[int, float]] = deque(maxlen=KEY_LOCK_NOTES)  # (pitch, duration)
        self.recent_chords: deque[int] = deque(maxlen=CHORD_MEMORY)  # notes per onset the player struck
        self.dynamics: list[float] = []  # the player's last phrase: mean velocity per onset
        self.call: deque[list[Any]] = deque(maxlen=CALL_NOTES)  # [start, pitch, end | None]: the call under way
        self._last_cluster_start: float | None = None
        self._next_stale_check = 0.0

    def started(self, note: NoteStarted) -> None:
        self.pending.append([note.time, note.pitch, note.velocity, None])
        self.events.put(PlayerNoteOn(note.pitch, note.velocity, note.time))
        if self.new_notes == 0:  # the first note since an answer began: a new call
            self.call.clear()
        self.call.append([note.time, note.pitch, None])
        self.new_notes += 1
        self.velocity += 0.3 * (note.velocity - self.velocity)
        if self._last_cluster_start is None or note.time - self._last_cluster_start > CHORD_WINDOW_S:
            if self._last_cluster_start is not None:
                ioi = note.time - self._last_cluster_start
                if ioi < 2.0:  # a longer silence is a phrase boundary, not a tempo
                    self.timing.player_onset(ioi)
            self._last_cluster_start = note.time
        if self.settings.thru:
            now = self.clock()
            self.output.note_on_now(now, note.pitch, note.velocity, self.settings.out_channel, THRU_TAG)
            self.echo.remember(note.pitch, True, now, note.velocity)

    def ended(self, note: Any) -> None:
        for entry in self.pending:
            if entry[1] == note.pitch and entry[3] is None and abs(entry[0] - note.start) < 1e-6:
                entry[3] = note.start + note.duration
                break
        for entry in self.call:
            if entry[1] == note.pitch and entry[2] is None and abs(entry[0] - note.start) < 1e-6:
                entry[2] = note.start + note.duration
                break
        self.recent.append((note.pitch, note.duration))
        self.events.put(NotePlayed("player", note.pitch, note.velocity, note.start, note.duration))
        if self.settings.thru:
            self.output.note_off_now(note.pitch, self.settings.out_channel, THRU_TAG)
            self.echo.remember(note.pitch, False, self.clock(), 0)

    def call_notes(self, now: float) -> list[CallNote]:
        """The call under way (the notes struck since the last answer began), held notes up to `now`."""
        return [CallNote(start, pitch, (end if end is not None else now) - start) for start, pitch, end in self.call]

    def expire_stale(self, now: float) -> None:
        """A key down for `stale_key_s` without its note-off is taken as released."""
        if self.tracker.sounding and now >= self._next_stale_check:
            self._next_stale_check = now + STALE_CHECK_S
            for note in self.tracker.expire(now, self.settings.stale_key_s):
                self.ended(note)

    def feed_ready(self, now: float, force: bool = False) -> None:
        """Feed the model whole chords, in onset-then-pitch order, once their notes have ended.

        A note held for long (or `force`) is fed with the time it has sounded so far.
        """
        while self.pending:
            first = self.pending[0][0]
            cluster = [e for e in self.pending if e[0] - first <= CHORD_WINDOW_S]
            later = len(self.pending) > len(cluster)
            if not force and any(e[3] is None for e in cluster) and not (later and now - first > 1.0):
                return
            del self.pending[: len(cluster)]
            self.recent_chords.append(len({entry[1] for entry in cluster}))
            step = 0.0 if self.last_onset is None else max(first - self.last_onset, 0.0)
            if step >= self.settings.gap_s:
                # A new phrase: the style memory learns phrases, not the pauses between them
                # (with follow up, an answer would otherwise copy the player's last pause).
                self.style.new_phrase()
                self.dynamics = []
            self.dynamics.append(statistics.fmean(entry[2] for entry in cluster))
            factor = self.timing.tempo_factor
            for i, (start, pitch, velocity, end) in enumerate(sorted(cluster, key=lambda e: e[1])):
                duration = (end if end is not None else now) - start
                self._observe(Event(pitch, (step if i == 0 else 0.0) / factor, duration / factor,
                                    self._normalised_velocity(velocity)))
            self.last_onset = first

    def _observe(self, event: Event) -> None:
        """One of the player's events: into the rolling seed, and into the style memory."""
        self.improviser.observe(event)
        pitch, step, _, _ = self.improviser.seed[-1]
        self.style.learn(pitch, step)

    def _normalised_velocity(self, velocity: int) -> int:
        return int(min(max(round(velocity * REFERENCE_VELOCITY / max(self.velocity, 1.0)), 1), 127))

    def answer_constraints(self, constraints: Constraints) -> Constraints:
        """`constraints` narrowed to the register the player has just used (± register_margin, inside the
        range) and to chords of about the player's size (+ chord_margin).

        Worked out for each sampled note (a few µs, next to the model's ~500): it follows the
        player's notes as they come, held ones included (a duet answers while they sound).
        """
        margin = self.settings.register_margin
        chord_margin = self.settings.chord_margin
        if chord_margin is not None and self.recent_chords and constraints.max_polyphony is not None:
            polyphony = min(constraints.max_polyphony, max(self.recent_chords) + chord_margin)
            constraints = replace(constraints, max_polyphony=max(polyphony, 1))
        if margin and (self.recent or self.pending):
            pitches = [pitch for pitch, _ in self.recent] + [entry[1] for entry in self.pending]
            lo, hi = min(pitches) - margin, max(pitches) + margin
            if hi - lo < constraints.pitch_hi - constraints.pitch_lo:
                # Slide the window into the range rather than cut it at the edge: it keeps its
                # width, so every pitch class (and a locked key's notes) stays in it.
                shift = max(constraints.pitch_lo - lo, 0) - max(hi - constraints.pitch_hi, 0)
                narrowed = replace(constraints, pitch_lo=lo + shift, pitch_hi=hi + shift)
                try:
                    narrowed.pitch_mask()
                    constraints = narrowed
                except ValueError:  # no pitch of the locked key in there
                    pass
        return constraints

    def set_model(self) -> None:
        """The improviser has a new model: with other bins the style memory's tokens mean nothing now."""
        if self.improviser.bins.n_step != self.style.n_step:
            self.style = StyleMemory(self.improviser.bins.n_step)

    def reset(self) -> None:
        """Forget what was heard (the register and the key to lock come from the recent notes too)."""
        self.pending.clear()
        self.recent.clear()
        self.recent_chords.clear()
        self.call.clear()
        self.dynamics = []
        self.improviser.reset()
        self.style.new_phrase()
        self.last_onset = None
