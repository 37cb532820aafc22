"""The session as the screen sees it: every note played, held notes, and saving it as MIDI.

Times are seconds on the engine's monotonic clock; `tracks` shifts them so
a saved file starts at 0.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from improv.live.protocol import NotePlayed, PlayerNoteOn, ReplyDone
from improv.music.events import Note
from improv.midi.files import write_midi

PLAYER = "player"
IMPROV = "improv"
_SAME_NOTE_S = 0.01  # a finished note this close to a held one's start is that note
_LONGEST_NOTE_S = 60.0  # finished notes starting earlier than this before a window are not searched


@dataclass(slots=True)
class RollNote:
    who: str  # PLAYER or IMPROV
    pitch: int
    velocity: int
    start: float
    end: float | None  # None: the key is still down

    def end_or(self, now: float) -> float:
        return now if self.end is None else self.end


class Recording:
    """Every note of the session in the order they began, the held ones too."""

    def __init__(self) -> None:
        self.notes: list[RollNote] = []
        self._held: dict[int, RollNote] = {}  # the player's keys that are down, by pitch
        self.version = 0  # changes whenever a note is added or changed

    def __len__(self) -> int:
        return len(self.notes)

    @property
    def held(self) -> list[RollNote]:
        return list(self._held.values())

    def key_down(self, pitch: int, velocity: int, start: float) -> None:
        note = RollNote(PLAYER, pitch, velocity, start, None)
        previous = self._held.pop(pitch, None)
        if previous is not None:  # its end was lost: it ends where the new one starts
            previous.end = start
        self._held[pitch] = note
        self.notes.append(note)
        self.version += 1

    def played(self, who: str, pitch: int, velocity: int, start: float, duration: float) -> None:
        """A finished note (the player's) or a struck one (improv's, whose length is known)."""
        held = self._held.get(pitch) if who == PLAYER else None
        if held is not None and abs(held.start - start) <= _SAME_NOTE_S:
            del self._held[pitch]
            held.end = held.start + duration
        else:
            self.notes.append(RollNote(who, pitch, velocity, start, start + duration))
        self.version += 1

    def cut(self, who: str, at: float) -> None:
        """Notes of `who` stopped at `at` (an interrupted answer, a panic): end them there."""
        for note in self._recent(at - _LONGEST_NOTE_S):
            if note.who == who and note.end is not None and note.end > at:
                note.end = max(at, note.start)
                self.version += 1

    def release_all(self, at: float) -> None:
        """The player's held keys ended at `at` (their note-offs will never come)."""
        for note in self._held.values():
            note.end = max(at, note.start)
        if self._held:
            self._held.clear()
            self.version += 1

    def _recent(self, since: float) -> Iterator[RollNote]:
        """Notes that started at or after `since`, newest first (plus any older ones still held)."""
        for note in reversed(self.notes):
            if note.start < since:
                break
            yield note
        for note in self._held.values():
            if note.start < since:
                yield note

    def visible(self, start: float, end: float) -> list[RollNote]:
        """Notes sounding at some time in [start, end] (held ones sound until `end`)."""
        return [n for n in self._recent(start - _LONGEST_NOTE_S) if n.start <= end and n.end_or(end) >= start]

    def take(self, event: object, now: float) -> None:
        """Keep what an engine event says about the notes (other events are ignored)."""
        if isinstance(event, NotePlayed):
            self.played(event.who, event.pitch, event.velocity, event.start, event.duration)
        elif isinstance(event, PlayerNoteOn):
            self.key_down(event.pitch, event.velocity, event.start)
        elif isinstance(event, ReplyDone) and event.interrupted:
            self.cut(IMPROV, now)

    def tracks(self, now: float) -> dict[str, list[Note]]:
        """The notes as {"player": [...], "improv": [...]}, the first one starting at 0 s."""
        if not self.notes:
            return {PLAYER: [], IMPROV: []}
        origin = min(note.start for note in self.notes)
        parts: dict[str, list[Note]] = {PLAYER: [], IMPROV: []}
        for note in self.notes:
            start = note.start - origin
            duration = max(note.end_or(now) - note.start, 0.0)
            parts[note.who].append(Note(note.pitch, min(max(note.velocity, 1), 127), start, duration))
        return parts

    def save(self, directory: Path, now: float, wall_time: datetime.datetime | None = None) -> Path:
        """Write the session to `directory`/session-YYYYMMDD-HHMMSS.mid (never over another file)."""
        stamp = (wall_time or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"session-{stamp}.mid"
        counter = 2
        while path.exists():
            path = directory / f"session-{stamp}-{counter}.mid"
            counter += 1
        write_midi(self.tracks(now), path)
        return path
