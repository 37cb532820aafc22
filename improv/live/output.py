"""improv's MIDI output: it owns the sounding notes, so no key is ever struck twice or left hanging.

Every note that reaches the port goes through here, whoever asks for it (answers, duet, thru, the
computer-keyboard piano; the built-in synth hears it through `tap`). The rules, each tested on a
fake clock in tests/test_output.py:

- at most one sounding note per (channel, pitch): a re-strike sends the sounding note's note-off
  first and drops that note's pending note-off;
- at one timestamp, note-offs go out before note-ons (a note's own zero-length off after its on);
- `panic` releases exactly what is sounding, then sends CC123 (all notes off) on every channel used;
- a watchdog ends notes held longer than `max_hold_s`.

Times are seconds on the engine's monotonic clock; the caller says what time it is. Nothing here
calls back up: the engine collects what went out with `take_sent`.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from improv.midi.status import ALL_NOTES_OFF, CONTROL_CHANGE, NOTE_OFF, NOTE_ON

Send = Callable[[Sequence[int]], object]
Tap = Callable[[str | None, Sequence[int]], object]
_OFF, _ON, _OWN_OFF = 0, 1, 2  # order at one time: offs, ons, then the offs of zero-length notes struck there
SENT_MEMORY = 4096  # note-ons remembered for `take_sent` when nobody collects them


@dataclass(order=True, slots=True)
class _Pending:
    time: float
    order: int
    seq: int  # then first scheduled first
    is_on: bool = field(compare=False)
    note_id: int = field(compare=False)
    channel: int = field(compare=False)
    pitch: int = field(compare=False)
    velocity: int = field(compare=False)
    tag: str = field(compare=False)
    live: bool = field(default=True, compare=False)  # False: dropped (a re-strike took the key over)


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


@dataclass(slots=True)
class _Sounding:
    note_id: int
    since: float
    tag: str


class Output:
    """Sends scheduled notes when due; thread-safe so `panic` may come from any thread."""

    def __init__(self, send: Send, max_hold_s: float = 10.0) -> None:
        self._send = send
        self.max_hold_s = max_hold_s
        # Also hears every message sent, with the tag of its note (None: not a note, e.g. CC123):
        # the built-in synth, which plays the player's and improv's notes with different sounds.
        self.tap: Tap | None = None
        self._heap: list[_Pending] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._sounding: dict[tuple[int, int], _Sounding] = {}  # (channel, pitch) -> the note sounding there
        self._offs: dict[int, _Pending] = {}  # note id -> its pending note-off
        self._durations: dict[int, float] = {}
        self._sent: deque[Sent] = deque(maxlen=SENT_MEMORY)
        self.channels_used: set[int] = set()
        self._lock = threading.RLock()
        self.late_s: deque[float] = deque(maxlen=4096)  # lateness of recent scheduled note-ons, for statistics
        self.send_errors = 0

    # -- scheduling -------------------------------------------------------------

    def note(self, start: float, duration: float, pitch: int, velocity: int, channel: int = 0, tag: str = "reply") -> int:
        """Schedule a note-on at `start` and its note-off `duration` later; returns its id."""
        with self._lock:
            note_id = next(self._ids)
            duration = max(duration, 0.0)
            self._durations[note_id] = duration
            off = _Pending(start + duration, _OFF if duration > 0 else _OWN_OFF, next(self._seq), False, note_id,
                           channel, pitch, 0, tag)
            heapq.heappush(self._heap, _Pending(start, _ON, next(self._seq), True, note_id, channel, pitch, velocity, tag))
            heapq.heappush(self._heap, off)
            self._offs[note_id] = off
            return note_id

    def note_on_now(self, now: float, pitch: int, velocity: int, channel: int, tag: str) -> None:
        """Strike a key immediately and hold it until `note_off_now` (thru, computer keyboard)."""
        with self._lock:
            self._strike(now, now, next(self._ids), channel, pitch, velocity, tag, duration=0.0, timed=False)

    def note_off_now(self, pitch: int, channel: int, tag: str) -> None:
        """Release a key struck with `note_on_now`, unless a note of another tag has taken it over since."""
        with self._lock:
            held = self._sounding.get((channel, pitch))
            if held is not None and held.tag == tag:
                self._release(channel, pitch)

    def next_due(self) -> float | None:
        with self._lock:
            self._drop_dead()
            return self._heap[0].time if self._heap else None

    def pending(self, tag: str | None = None) -> int:
        with self._lock:
            return sum(1 for p in self._heap if p.is_on and (tag is None or p.tag == tag))

    def sounding(self, tag: str | None = None) -> int:
        with self._lock:
            return sum(1 for held in self._sounding.values() if tag is None or held.tag == tag)

    def sounding_keys(self) -> set[tuple[int, int]]:
        """(channel, pitch) of every note sounding now."""
        with self._lock:
            return set(self._sounding)

    def channels(self) -> tuple[int, ...]:
        """The channels notes went out on so far (from any thread)."""
        with self._lock:
            return tuple(sorted(self.channels_used))

    def busy(self, tag: str) -> bool:
        """Whether notes of `tag` are still scheduled or sounding."""
        with self._lock:
            return (any(p.tag == tag and p.live for p in self._heap)
                    or any(held.tag == tag for held in self._sounding.values()))

    def take_sent(self) -> list[Sent]:
        """The note-ons that went out since the last call, oldest first."""
        with self._lock:
            sent = list(self._sent)
            self._sent.clear()
            return sent

    # -- sending ----------------------------------------------------------------

    def run_due(self, now: float) -> int:
        """Send everything due by `now`; returns how many messages went out."""
        sent = 0
        with self._lock:
            while self._heap and self._heap[0].time <= now:
                item = heapq.heappop(self._heap)
                if not item.live:
                    continue
                if item.is_on:
                    self._strike(now, item.time, item.note_id, item.channel, item.pitch, item.velocity, item.tag,
                                 self._durations.get(item.note_id, 0.0))
                else:
                    self._offs.pop(item.note_id, None)
                    self._durations.pop(item.note_id, None)
                    held = self._sounding.get((item.channel, item.pitch))
                    if held is not None and held.note_id == item.note_id:
                        self._release(item.channel, item.pitch)
                sent += 1
            if self.max_hold_s and self._sounding:
                self._watchdog(now)
        return sent

    def _strike(self, now: float, scheduled: float, note_id: int, channel: int, pitch: int, velocity: int, tag: str,
                duration: float, timed: bool = True) -> None:
        if (channel, pitch) in self._sounding:
            self._release(channel, pitch)  # end it before it is struck again
        self._sounding[(channel, pitch)] = _Sounding(note_id, now, tag)
        self.channels_used.add(channel)
        self._raw((NOTE_ON | channel, pitch, velocity), tag)
        if timed:  # a key struck now (thru, the computer keyboard) cannot be late
            self.late_s.append(now - scheduled)
        self._sent.append(Sent(tag, pitch, velocity, channel, scheduled, now, duration))

    def _release(self, channel: int, pitch: int) -> None:
        """The note-off of the note sounding at (channel, pitch), if any; its pending off is dropped."""
        held = self._sounding.pop((channel, pitch), None)
        if held is None:
            return
        off = self._offs.pop(held.note_id, None)
        if off is not None:
            off.live = False
            self._durations.pop(held.note_id, None)
        self._raw((NOTE_OFF | channel, pitch, 0), held.tag)

    def _drop_dead(self) -> None:
        while self._heap and not self._heap[0].live:
            heapq.heappop(self._heap)

    def _watchdog(self, now: float) -> None:
        for (channel, pitch), held in list(self._sounding.items()):
            if now - held.since > self.max_hold_s:
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
                for p in self._heap:
                    if p.tag == tag and not p.is_on:
                        self._offs.pop(p.note_id, None)
                        self._durations.pop(p.note_id, None)
                self._heap = kept
                heapq.heapify(self._heap)
            for (channel, pitch), held in list(self._sounding.items()):
                if held.tag == tag:
                    self._release(channel, pitch)
            return dropped

    def panic(self) -> None:
        """All notes off now: a note-off for every sounding note, then CC123 on every channel used."""
        with self._lock:
            self._heap.clear()
            self._offs.clear()
            self._durations.clear()
            for channel, pitch in list(self._sounding):
                self._release(channel, pitch)
            for channel in sorted(self.channels_used):
                self._raw((CONTROL_CHANGE | channel, ALL_NOTES_OFF, 0))

