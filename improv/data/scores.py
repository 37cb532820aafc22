"""Scores turned into notes: every part of a work merged into one stream as a pianist would play a reduction,
with the tempo map honoured and velocities from the dynamic markings. Pure music21 reading, no file cache."""

from __future__ import annotations

import logging

import warnings
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from improv.music.events import Note, quantize_time

log = logging.getLogger(__name__)

DEFAULT_VELOCITY = 80
DEFAULT_SECONDS_PER_QUARTER = 0.5  # quarter = 120 bpm, music21's own default

# Sustained dynamic levels: the level holds for following notes of the part.
DYNAMIC_VELOCITY: dict[str, int] = {
    "pppppp": 8,
    "ppppp": 14,
    "pppp": 20,
    "ppp": 30,
    "pp": 40,
    "p": 55,
    "mp": 70,
    "mf": 80,
    "f": 95,
    "ff": 110,
    "fff": 120,
    "ffff": 125,
    "fffff": 127,
    "ffffff": 127,
}
# Accents: notes of the part starting at the marking get the level in force
# raised by this much (capped at 127); the level itself does not change...
ACCENT_BOOST: dict[str, int] = {"sf": 20, "sfz": 20, "fz": 20, "rf": 20, "rfz": 20, "sffz": 30, "sfzz": 30}
# ...except for these, which accent the onset and then fall to a new level.
ACCENT_THEN_LEVEL: dict[str, tuple[int, str]] = {"fp": (95, "p"), "sfp": (105, "p"), "sfpp": (105, "pp")}


# ---------------------------------------------------------------- extraction


@dataclass(frozen=True)
class _Extracted:
    """Compact result of one file, cheap to send between processes and to cache."""

    pitch: np.ndarray  # uint8
    velocity: np.ndarray  # uint8
    start: np.ndarray  # float64 seconds
    duration: np.ndarray  # float64 seconds
    has_dynamics: bool
    merged_unisons: int

    def notes(self) -> list[Note]:
        return [
            Note(p, v, s, d)
            for p, v, s, d in zip(
                self.pitch.tolist(), self.velocity.tolist(), self.start.tolist(), self.duration.tolist()
            )
        ]


class _TempoMap:
    """Quarter-note offsets to seconds, piecewise linear between tempo marks."""

    def __init__(self, marks: Sequence[tuple[float, float]]) -> None:
        # marks: (offset in quarters, seconds per quarter from there), sorted, unique offsets
        offsets = [0.0]
        rates = [DEFAULT_SECONDS_PER_QUARTER]
        for offset, rate in marks:
            if offset <= offsets[-1]:
                rates[-1] = rate  # a mark at (or before) the start replaces the default
            else:
                offsets.append(offset)
                rates.append(rate)
        seconds = [0.0]
        for i in range(1, len(offsets)):
            seconds.append(seconds[-1] + (offsets[i] - offsets[i - 1]) * rates[i - 1])
        self._offsets = offsets
        self._rates = rates
        self._seconds = seconds

    def seconds(self, offset: float) -> float:
        i = max(bisect_right(self._offsets, offset) - 1, 0)
        return self._seconds[i] + (offset - self._offsets[i]) * self._rates[i]


def _tempo_map(score: Any) -> _TempoMap:
    from music21 import tempo

    marks: dict[float, float] = {}
    flat = score.flatten()
    for indication in flat.getElementsByClass(tempo.TempoIndication):
        try:
            rate = indication.getSoundingMetronomeMark().secondsPerQuarter()
        except Exception:  # a tempo word music21 cannot turn into a number
            continue
        if rate is None or not 0.05 <= rate <= 5.0:  # 12-1200 quarters per minute
            continue
        # the same mark is usually repeated in every part: the first one wins
        marks.setdefault(float(indication.getOffsetBySite(flat)), float(rate))
    return _TempoMap(sorted(marks.items()))


class _Dynamics:
    """The velocity of a note of one part, from the dynamic marks of that part.

    A level mark (p, f, ...) holds until the next one; an accent (sf, ...) only
    raises notes starting at its own offset; fp-style marks accent that onset
    and then set a new level. Marks music21 cannot name (words) are ignored.
    """

    def __init__(self, marks: Iterable[tuple[float, str]]) -> None:
        self._level_offsets: list[float] = []
        self._levels: list[int] = []
        self._accent_at: dict[float, str] = {}
        self.present = False
        for offset, value in sorted(marks, key=lambda mark: mark[0]):  # stable: score order on ties
            if value in DYNAMIC_VELOCITY:
                self._set_level(offset, DYNAMIC_VELOCITY[value])
            elif value in ACCENT_THEN_LEVEL:
                self._accent_at[round(offset, 6)] = value
                self._set_level(offset, DYNAMIC_VELOCITY[ACCENT_THEN_LEVEL[value][1]])
            elif value in ACCENT_BOOST:
                self._accent_at[round(offset, 6)] = value
            else:
                continue
            self.present = True

    def _set_level(self, offset: float, velocity: int) -> None:
        if self._level_offsets and self._level_offsets[-1] == offset:
            self._levels[-1] = velocity
        else:
            self._level_offsets.append(offset)
            self._levels.append(velocity)

    def velocity(self, offset: float) -> int:
        i = bisect_right(self._level_offsets, offset) - 1
        level = self._levels[i] if i >= 0 else DEFAULT_VELOCITY
        accent = self._accent_at.get(round(offset, 6))
        if accent is None:
            return level
        if accent in ACCENT_THEN_LEVEL:
            return ACCENT_THEN_LEVEL[accent][0]
        return min(127, level + ACCENT_BOOST[accent])


def _dynamic_value(dynamic: Any) -> str:
    value = dynamic.value
    return value.strip().lower() if isinstance(value, str) else ""


def _instrument_key(part: Any) -> str:
    """Staves of one instrument (a piano's two PartStaffs) share dynamics."""
    from music21 import stream

    part_id = str(part.id)
    if isinstance(part, stream.PartStaff) and "-Staff" in part_id:
        return part_id.rsplit("-Staff", 1)[0]
    return part_id


# A tie continuation more than this many quarters after its note ended is not
# joined (broken encodings); it sounds as a note of its own instead.
_TIE_GAP_QUARTERS = 0.125


def _part_notes(flat: Any) -> list[tuple[float, float, int]]:
    """(start, end) in quarters and MIDI pitch of one flattened part, ties joined."""
    from music21 import chord, harmony, note

    items: list[tuple[float, int, float, int, str | None]] = []
    for element in flat.notes:
        if isinstance(element, harmony.Harmony) or element.duration.isGrace:
            continue
        length = float(element.quarterLength)
        if length <= 0:
            continue
        offset = float(element.getOffsetBySite(flat))
        members = element.notes if isinstance(element, chord.Chord) else (element,)
        for member in members:
            if not isinstance(member, note.Note):  # unpitched percussion
                continue
            pitch = int(round(member.pitch.ps))
            if not 0 <= pitch <= 127:
                continue
            tie = member.tie.type if member.tie is not None else None
            continues = tie in ("stop", "continue")
            # continuations first, so a new note at the same onset cannot steal the tie
            items.append((offset, 0 if continues else 1, length, pitch, tie))
    items.sort(key=lambda item: (item[0], item[1]))

    notes: list[list[float]] = []  # [start, end, pitch]
    open_ties: dict[int, int] = {}
    for offset, _, length, pitch, tie in items:
        index = open_ties.get(pitch)
        if tie in ("stop", "continue") and index is not None and offset <= notes[index][1] + _TIE_GAP_QUARTERS:
            notes[index][1] = max(notes[index][1], offset + length)
            if tie == "stop":
                del open_ties[pitch]
            continue
        notes.append([offset, offset + length, pitch])
        if tie in ("start", "continue"):
            open_ties[pitch] = len(notes) - 1
        else:
            open_ties.pop(pitch, None)
    return [(start, end, int(pitch)) for start, end, pitch in notes]


def _score_notes(score: Any, time_origin_s: float = 0.0) -> tuple[list[tuple[float, float, int, int]], bool]:
    """(start s, duration s, pitch, velocity) of every part of one score, unmerged."""
    from music21 import dynamics

    if score.atSoundingPitch is not True:
        try:
            score = score.toSoundingPitch()  # a copy: the caller's score stays as it was
        except Exception as error:  # keep written pitch rather than lose the work
            log.debug("could not transpose to sounding pitch: %s", error)
    tempo_map = _tempo_map(score)
    parts = list(score.parts) or [score]

    flats = [part.flatten() for part in parts]
    marks_by_instrument: dict[str, list[tuple[float, str]]] = {}
    for part, flat in zip(parts, flats):
        marks = marks_by_instrument.setdefault(_instrument_key(part), [])
        for dynamic in flat.getElementsByClass(dynamics.Dynamic):
            marks.append((float(dynamic.getOffsetBySite(flat)), _dynamic_value(dynamic)))
    levels = {key: _Dynamics(marks) for key, marks in marks_by_instrument.items()}

    out: list[tuple[float, float, int, int]] = []
    for part, flat in zip(parts, flats):
        part_levels = levels[_instrument_key(part)]
        for start_q, end_q, pitch in _part_notes(flat):
            start_s = tempo_map.seconds(start_q)
            duration_s = tempo_map.seconds(end_q) - start_s
            out.append((time_origin_s + start_s, duration_s, pitch, part_levels.velocity(start_q)))
    return out, any(level.present for level in levels.values())


def _merge_unisons(raw: Iterable[tuple[float, float, int, int]]) -> tuple[dict[tuple[float, int], list], int]:
    merged: dict[tuple[float, int], list] = {}
    dropped = 0
    for start_s, duration_s, pitch, velocity in raw:
        start = quantize_time(start_s)
        duration = quantize_time(duration_s)
        if duration <= 0:
            continue
        key = (start, pitch)
        held = merged.get(key)
        if held is None:
            merged[key] = [duration, velocity]
        else:
            dropped += 1
            held[0] = max(held[0], duration)
            held[1] = max(held[1], velocity)
    return merged, dropped


def _extract_stream(parsed: Any) -> _Extracted:
    from music21 import stream

    scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
    raw: list[tuple[float, float, int, int]] = []
    has_dynamics = False
    origin = 0.0
    for score in scores:  # an opus plays its scores one after another
        notes, dynamics_here = _score_notes(score, origin)
        raw.extend(notes)
        has_dynamics |= dynamics_here
        origin = max([origin] + [start + duration for start, duration, _, _ in notes])
    merged, dropped = _merge_unisons(raw)
    keys = sorted(merged)
    return _Extracted(
        pitch=np.array([pitch for _, pitch in keys], dtype=np.uint8),
        velocity=np.array([merged[key][1] for key in keys], dtype=np.uint8),
        start=np.array([start for start, _ in keys], dtype=np.float64),
        duration=np.array([merged[key][0] for key in keys], dtype=np.float64),
        has_dynamics=has_dynamics,
        merged_unisons=dropped,
    )


def _extract_arrays(path: Path) -> _Extracted:
    from music21 import converter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # forceSource: do not let music21 write its own pickles; we cache the result
        return _extract_stream(converter.parse(str(path), forceSource=True))


def notes_from_score(score: Any) -> tuple[list[Note], bool]:
    """A parsed music21 Score (or Opus, or single Part) as merged notes sorted by
    onset then pitch, and whether it marks dynamics. The score is not modified."""
    extracted = _extract_stream(score)
    return extracted.notes(), extracted.has_dynamics


def extract_work(path: Path | str) -> tuple[list[Note], bool]:
    """Parse one score file into its merged notes (sorted by onset then pitch) and
    whether it marks dynamics."""
    extracted = _extract_arrays(Path(path))
    return extracted.notes(), extracted.has_dynamics


def _extract_task(task: tuple[str, str]) -> tuple[str, _Extracted | None, str]:
    """Worker entry: never raises, so one bad file cannot stop the pool."""
    name, path = task
    try:
        return name, _extract_arrays(Path(path)), ""
    except Exception as error:  # noqa: BLE001 - reported as a one-line warning
        message = " ".join(f"{type(error).__name__}: {error}".split())
        return name, None, message[:300]
