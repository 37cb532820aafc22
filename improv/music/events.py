"""Notes and the model's event sequence.

A `Note` is what a musician hears: a pitch struck at a time for a while.
An `Event` is what the model reads: the same note, but placed relative to the
previous onset (`step`), so the sequence does not depend on where in a piece
it starts. Both use seconds; times are kept on a 1 microsecond grid so that
notes -> events -> notes is exact (MIDI itself cannot express finer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

TIME_RESOLUTION_S = 1e-6
_TIME_DIGITS = 6
MAX_TRACK = 0xFFFF  # a standard MIDI file counts its tracks in 16 bits


def quantize_time(t: float) -> float:
    """Round a time in seconds to the 1 microsecond grid notes live on."""
    return round(t, _TIME_DIGITS)


@dataclass(frozen=True, slots=True)
class Note:
    """A sounding note: pitch 0-127, velocity 1-127, start/duration in seconds, channel 0-15.

    `track` is the index of the MIDI file track it was read from (0 when it never came from a
    file), so that writing it back keeps apart what a file kept apart.
    """

    pitch: int
    velocity: int
    start: float
    duration: float
    channel: int = 0
    track: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.pitch <= 127:
            raise ValueError(f"Note pitch must be 0-127, got {self.pitch}")
        if not 1 <= self.velocity <= 127:
            raise ValueError(f"Note velocity must be 1-127, got {self.velocity}")
        if not 0 <= self.channel <= 15:
            raise ValueError(f"Note channel must be 0-15, got {self.channel}")
        if not 0 <= self.track <= MAX_TRACK:
            raise ValueError(f"Note track must be 0-{MAX_TRACK}, got {self.track}")
        if not self.start >= 0:
            raise ValueError(f"Note start must be >= 0 s, got {self.start}")
        if not self.duration >= 0:
            raise ValueError(f"Note duration must be >= 0 s, got {self.duration}")

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True, slots=True)
class Event:
    """One model event: pitch, seconds since the previous onset, duration (s), velocity."""

    pitch: int
    step: float
    duration: float
    velocity: int


def sort_notes(notes: Iterable[Note]) -> list[Note]:
    """The canonical order of polyphony: by onset, then pitch (chords rise)."""
    return sorted(notes, key=lambda n: (n.start, n.pitch, n.channel))


def notes_to_events(notes: Iterable[Note], origin: float = 0.0) -> list[Event]:
    """Turn notes into events; the first step is measured from `origin`.

    Chord tones share an onset and so get step 0 after the lowest one.
    """
    events: list[Event] = []
    previous = origin
    for note in sort_notes(notes):
        events.append(Event(note.pitch, quantize_time(note.start - previous), note.duration, note.velocity))
        previous = note.start
    return events


def events_to_notes(events: Sequence[Event], origin: float = 0.0, channel: int = 0) -> list[Note]:
    """Inverse of `notes_to_events`: accumulate steps from `origin`."""
    notes: list[Note] = []
    t = origin
    for event in events:
        t = quantize_time(t + event.step)
        notes.append(Note(event.pitch, event.velocity, t, event.duration, channel))
    return notes
