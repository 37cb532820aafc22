"""Timed MIDI output with held-note bookkeeping: never a stuck note.

Every note-on that goes out is remembered until its note-off goes out. A note
of a key that is still sounding is ended before it is struck again, a
watchdog ends notes held too long, and `panic` ends everything and sends
CC123 (all notes off) on every channel used. Times are seconds on the
engine's monotonic clock; the caller says what time it is, so tests can run
on a fake clock.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

NOTE_ON = 0x90
NOTE_OFF = 0x80
CONTROL_CHANGE = 0xB0
ALL_NOTES_OFF = 123

Send = Callable[[Sequence[int]], object]


@dataclass(order=True, slots=True)
class _Pending:
    time: float
    order: int  # note-offs (0) before note-ons (1) at one time, then first scheduled first
    seq: int
    is_on: bool = field(compare=False)
    note_id: int = field(compare=False)
    channel: int = field(compare=False)
    pitch: int = field(compare=False)
    velocity: int = field(compare=False)
    tag: str = field(compare=False)


@dataclass(frozen=True, slots=True)
class Sent:
    """A note-on that went out, for the piano roll and for timing statistics."""

    tag: str
    pitch: int
    velocity: int
    channel: int
    scheduled: float
    sent: float
    duration: float


class Scheduler:
    """Sends scheduled notes when due; thread-safe so `panic` may come from any thread."""

    def __init__(self, send: Send, max_hold_s: float = 10.0, on_sent: Callable[[Sent], None] | None = None) -> None:
        self._send = send
        self.max_hold_s = max_hold_s
        self._on_sent = on_sent
        # Also hears every message sent, with the tag of its note (None: not a note, e.g. CC123):
        # the built-in synth, which plays the player's and improv's notes with different sounds.
        self.tap: Callable[[str | None, Sequence[int]], object] | None = None
        self._heap: list[_Pending] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._sounding: dict[tuple[int, int], tuple[int, float, str]] = {}  # key -> (note id, since, tag)
        self._durations: dict[int, float] = {}
        self.channels_used: set[int] = set()
        self._lock = threading.RLock()
        self.late_s: deque[float] = deque(maxlen=4096)  # lateness of recent scheduled note-ons, for statistics
        self.send_errors = 0

    # -- scheduling -------------------------------------------------------------

    def note(self, start: float, duration: float, pitch: int, velocity: int, channel: int = 0, tag: str = "reply") -> int:
        """Schedule a note-on at `start` and its note-off `duration` later; returns its id."""
        with self._lock:
            note_id = next(self._ids)
            self._durations[note_id] = duration
            heapq.heappush(self._heap, _Pending(start, 1, next(self._seq), True, note_id, channel, pitch, velocity, tag))
            heapq.heappush(self._heap, _Pending(start + max(duration, 0.0), 0, next(self._seq), False, note_id, channel, pitch, 0, tag))
            return note_id

    def note_on_now(self, now: float, pitch: int, velocity: int, channel: int, tag: str) -> None:
        """Strike a key immediately and hold it until `note_off_now` (thru, computer keyboard)."""
        with self._lock:
            note_id = next(self._ids)
            self._strike(now, now, note_id, channel, pitch, velocity, tag, duration=0.0, timed=False)

    def note_off_now(self, pitch: int, channel: int, tag: str) -> None:
        with self._lock:
            held = self._sounding.get((channel, pitch))
            if held is not None and held[2] == tag:
                self._release(channel, pitch)

    def next_due(self) -> float | None:
        with self._lock:
            return self._heap[0].time if self._heap else None

    def pending(self, tag: str | None = None) -> int:
        with self._lock:
            return sum(1 for p in self._heap if p.is_on and (tag is None or p.tag == tag))

    def sounding(self, tag: str | None = None) -> int:
        with self._lock:
            return sum(1 for _, _, t in self._sounding.values() if tag is None or t == tag)

    def channels(self) -> tuple[int, ...]:
        """The channels notes went out on so far (from any thread)."""
        with self._lock:
            return tuple(sorted(self.channels_used))

    def busy(self, tag: str) -> bool:
        """Whether notes of `tag` are still scheduled or sounding."""
        with self._lock:
            return any(p.tag == tag for p in self._heap) or any(t == tag for _, _, t in self._sounding.values())

    # -- sending ----------------------------------------------------------------

    def run_due(self, now: float) -> int:
        """Send everything due by `now`; returns how many messages went out."""
        sent = 0
        with self._lock:
            while self._heap and self._heap[0].time <= now:
                item = heapq.heappop(self._heap)
                if item.is_on:
                    self._strike(now, item.time, item.note_id, item.channel, item.pitch, item.velocity, item.tag,
                                 self._durations.get(item.note_id, 0.0))
                else:
                    self._durations.pop(item.note_id, None)
                    held = self._sounding.get((item.channel, item.pitch))
                    if held is not None and held[0] == item.note_id:  # not if a newer strike took the key over
                        self._release(item.channel, item.pitch)
                sent += 1
            if self.max_hold_s and self._sounding:
                self._watchdog(now)
        return sent

    def _strike(self, now: float, scheduled: float, note_id: int, channel: int, pitch: int, velocity: int, tag: str,
                duration: float, timed: bool = True) -> None:
        if (channel, pitch) in self._sounding:
            self._release(channel, pitch)  # end it before it is struck again
        self._sounding[(channel, pitch)] = (note_id, now, tag)
        self.channels_used.add(channel)
        self._raw((NOTE_ON | channel, pitch, velocity), tag)
        if timed:  # a key struck now (thru, the computer keyboard) cannot be late
            self.late_s.append(now - scheduled)
        if self._on_sent is not None:
            self._on_sent(Sent(tag, pitch, velocity, channel, scheduled, now, duration))

    def _release(self, channel: int, pitch: int) -> None:
        _, _, tag = self._sounding.pop((channel, pitch))
        self._raw((NOTE_OFF | channel, pitch, 0), tag)

    def _watchdog(self, now: float) -> None:
        for (channel, pitch), (_, since, _) in list(self._sounding.items()):
            if now - since > self.max_hold_s:
                self._release(channel, pitch)

    def send_now(self, data: Sequence[int]) -> None:
        """A message that is not a note (clock, transport), sent at once through the same port."""
        with self._lock:
            self._raw(data)

    def _raw(self, data: Sequence[int], tag: str | None = None) -> None:
        try:
            self._send(data)
        except Exception:  # a vanished port must not stop the instrument
            self.send_errors += 1
        tap = self.tap
        if tap is not None:
            try:
                tap(tag, data)
            except Exception:  # nor a synth that failed
                self.send_errors += 1

    # -- stopping ---------------------------------------------------------------

    def cancel(self, tag: str) -> int:
        """Drop the notes of `tag` not yet struck and release the sounding ones now."""
        with self._lock:
            kept = [p for p in self._heap if p.tag != tag]
            dropped = len(self._heap) - len(kept)
            if dropped:
                self._heap = kept
                heapq.heapify(self._heap)
            for (channel, pitch), (_, _, t) in list(self._sounding.items()):
                if t == tag:
                    self._release(channel, pitch)
            return dropped

    def panic(self) -> None:
        """All notes off now: a note-off for every sounding note, then CC123 on every channel used."""
        with self._lock:
            self._heap.clear()
            self._durations.clear()
            for channel, pitch in list(self._sounding):
                self._release(channel, pitch)
            for channel in sorted(self.channels_used):
                self._raw((CONTROL_CHANGE | channel, ALL_NOTES_OFF, 0))
