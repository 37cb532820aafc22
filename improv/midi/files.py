"""Standard MIDI files <-> notes, through mido.

Timing is computed from absolute ticks and one tempo map built from the
tempo changes of every track (in type 0 and 1 files a tempo change applies
to all tracks, wherever it is written), so no float error accumulates over
long files. Note-ons and note-offs are paired first-in first-out per track,
channel and pitch: overlapping notes of one pitch both survive.

Each note remembers the index of its track (`Note.track`) and writing puts it
back there, so notes that a file kept apart are never paired with each other.
"""

from __future__ import annotations

import bisect
import os
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import mido

from improv.errors import MidiFileError
from improv.music.events import Note, quantize_time, sort_notes

DEFAULT_TEMPO_US = 500_000  # 120 BPM, the MIDI default when no tempo is written
DEFAULT_TICKS_PER_BEAT = 960

PathOrFile = Union[str, os.PathLike, BinaryIO]


@dataclass(frozen=True, slots=True)
class TempoMap:
    """Piecewise-linear mapping between ticks and seconds.

    `ticks[i]` is where segment i starts, `seconds[i]` the time there and
    `seconds_per_tick[i]` its slope.
    """

    ticks: tuple[int, ...]
    seconds: tuple[float, ...]
    seconds_per_tick: tuple[float, ...]

    @classmethod
    def from_tempos(cls, changes: Iterable[tuple[int, int]], ticks_per_beat: int) -> TempoMap:
        """Build from (tick, microseconds per beat) changes; later entries win at one tick."""
        by_tick: dict[int, int] = {0: DEFAULT_TEMPO_US}
        for tick, tempo in sorted(changes, key=lambda c: c[0]):
            by_tick[tick] = tempo
        ticks: list[int] = []
        seconds: list[float] = []
        slopes: list[float] = []
        t = 0.0
        for tick in sorted(by_tick):
            if ticks:
                t += (tick - ticks[-1]) * slopes[-1]
            ticks.append(tick)
            seconds.append(t)
            slopes.append(by_tick[tick] / 1e6 / ticks_per_beat)
        return cls(tuple(ticks), tuple(seconds), tuple(slopes))

    @classmethod
    def constant(cls, seconds_per_tick: float) -> TempoMap:
        return cls((0,), (0.0,), (seconds_per_tick,))

    def to_seconds(self, tick: int) -> float:
        i = bisect.bisect_right(self.ticks, tick) - 1
        return self.seconds[i] + (tick - self.ticks[i]) * self.seconds_per_tick[i]

    def to_ticks(self, seconds: float) -> int:
        i = max(bisect.bisect_right(self.seconds, seconds) - 1, 0)
        return self.ticks[i] + round((seconds - self.seconds[i]) / self.seconds_per_tick[i])


def _describe(path: PathOrFile) -> str:
    if isinstance(path, (str, os.PathLike)):
        return os.fspath(path)
    return getattr(path, "name", None) or "<file object>"


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "unknown error"


def _load(path: PathOrFile) -> mido.MidiFile:
    where = _describe(path)
    try:
        if isinstance(path, (str, os.PathLike)):
            if not Path(path).is_file():
                reason = "is a directory" if Path(path).is_dir() else "no such file"
                raise MidiFileError(f"{where}: cannot read MIDI file: {reason}")
            midi = mido.MidiFile(path)
        else:
            midi = mido.MidiFile(file=path)
    except MidiFileError:
        raise
    except EOFError:
        raise MidiFileError(f"{where}: not a valid MIDI file: it ends too early (empty or truncated)") from None
    except Exception as error:  # mido raises OSError, ValueError, KeyError, ... for bad bytes
        raise MidiFileError(f"{where}: not a valid MIDI file: {_one_line(error)}") from None
    if midi.ticks_per_beat == 0:
        raise MidiFileError(f"{where}: not a valid MIDI file: time division is 0")
    if not midi.tracks:
        raise MidiFileError(f"{where}: not a valid MIDI file: it has no tracks")
    return midi


def _tempo_maps(midi: mido.MidiFile, where: str) -> list[TempoMap]:
    """One tempo map per track (the same shared map unless the file is type 2)."""
    division = midi.ticks_per_beat
    if division < 0:  # mido reads the 16-bit division signed: SMPTE timing comes back negative
        division &= 0xFFFF
    if division >= 0x8000:  # SMPTE: -frames per second in the high byte, ticks per frame in the low
        frames: float = 256 - (division >> 8)
        per_frame = division & 0xFF
        if frames <= 0 or per_frame == 0:
            raise MidiFileError(f"{where}: not a valid MIDI file: invalid SMPTE time division")
        if frames == 29:  # the code for 30 drop-frame: 29.97 frames per second
            frames = 30_000 / 1001
        return [TempoMap.constant(1.0 / (frames * per_frame))] * len(midi.tracks)
    per_track: list[list[tuple[int, int]]] = []
    for track in midi.tracks:
        tick = 0
        changes = []
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo" and msg.tempo > 0:
                changes.append((tick, msg.tempo))
        per_track.append(changes)
    if midi.type == 2:
        return [TempoMap.from_tempos(c, division) for c in per_track]
    shared = TempoMap.from_tempos([c for changes in per_track for c in changes], division)
    return [shared] * len(midi.tracks)


def _track_notes(track: mido.MidiTrack, tempo: TempoMap, end_tick: int, index: int) -> list[Note]:
    open_notes: dict[tuple[int, int], deque[tuple[int, int]]] = defaultdict(deque)
    spans: list[tuple[int, int, int, int, int]] = []  # start, end, pitch, velocity, channel
    tick = 0
    for msg in track:
        tick += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            open_notes[msg.channel, msg.note].append((tick, msg.velocity))
        elif msg.type in ("note_off", "note_on"):
            queue = open_notes.get((msg.channel, msg.note))
            if queue:  # a note-off with no note-on is ignored
                start, velocity = queue.popleft()
                spans.append((start, tick, msg.note, velocity, msg.channel))
    for (channel, pitch), queue in open_notes.items():
        spans.extend((start, end_tick, pitch, velocity, channel) for start, velocity in queue)
    notes = []
    for start, end, pitch, velocity, channel in spans:
        t0 = quantize_time(tempo.to_seconds(start))
        t1 = quantize_time(tempo.to_seconds(end))
        notes.append(Note(pitch, velocity, t0, max(quantize_time(t1 - t0), 0.0), channel, index))
    return notes


def read_midi(path: PathOrFile) -> list[Note]:
    """Every note of every channel (drums included), sorted by onset then pitch.

    Each note's `track` is the index of the file track it is in. Notes still sounding when the file ends are closed at its end. Raises
    `MidiFileError` (a `ValueError`) with a one-line message naming the file
    when it is not valid MIDI.
    """
    midi = _load(path)
    maps = _tempo_maps(midi, _describe(path))
    end_tick = max(sum(msg.time for msg in track) for track in midi.tracks)
    notes: list[Note] = []
    for index, (track, tempo) in enumerate(zip(midi.tracks, maps)):
        notes.extend(_track_notes(track, tempo, end_tick, index))
    return sort_notes(notes)


def _seconds_to_tempo_map(bpm: float, tempo_changes: Sequence[tuple[float, float]], ticks_per_beat: int) -> TempoMap:
    """A tempo map from (seconds, bpm) changes, each moved onto the tick grid."""
    changes = [(0, mido.bpm2tempo(bpm))]
    tempo = TempoMap.from_tempos(changes, ticks_per_beat)
    for seconds, change_bpm in sorted(tempo_changes):
        if not (change_bpm > 0 and seconds >= 0):
            raise ValueError(f"tempo change needs seconds >= 0 and bpm > 0, got ({seconds}, {change_bpm})")
        changes.append((tempo.to_ticks(seconds), mido.bpm2tempo(change_bpm)))
        tempo = TempoMap.from_tempos(changes, ticks_per_beat)
    return tempo


# At one tick of a track: the offs of notes that end there, then each zero-length note's on and
# off, then the ons of notes that start there.
_ENDS, _ZERO_LENGTH, _STARTS = 0, 1, 2


def _track_messages(notes: Iterable[Note], tempo: TempoMap) -> list[tuple[int, mido.Message]]:
    """A track's note messages as (tick, message), in file order.

    A reader pairs ons and offs first-in first-out per channel and pitch, so
    the k-th on of a pitch must meet the k-th off. Ons of one tick go out in
    the order their notes end, and offs never precede their own on; then every
    note comes back unchanged unless it lies strictly inside another note of
    its pitch, which no standard MIDI file can hold (such notes come back with
    their onsets and velocities, and the ends in order).
    """
    items: list[tuple[tuple[int, ...], list[mido.Message]]] = []
    for note in notes:
        start = tempo.to_ticks(note.start)
        end = max(tempo.to_ticks(note.end), start)
        on = mido.Message("note_on", note=note.pitch, velocity=note.velocity, channel=note.channel)
        off = mido.Message("note_off", note=note.pitch, velocity=0, channel=note.channel)
        where = (note.channel, note.pitch, note.velocity)
        if end == start:
            items.append(((start, _ZERO_LENGTH, *where), [on, off]))
        else:
            items.append(((start, _STARTS, end, *where), [on]))
            items.append(((end, _ENDS, *where), [off]))
    items.sort(key=lambda item: item[0])
    return [(key[0], msg) for key, messages in items for msg in messages]


def _parts(notes: Iterable[Note], track_name: str, names: Sequence[str]) -> list[tuple[str, list[Note]]]:
    """Notes grouped by their `track` index: every track up to the highest one, empty ones too."""
    by_track: dict[int, list[Note]] = defaultdict(list)
    for note in notes:
        by_track[note.track].append(note)
    count = max(max(by_track, default=0) + 1, len(names))
    default = [track_name] if count == 1 else [f"{track_name} {index}" for index in range(count)]
    return [(names[i] if i < len(names) else default[i], by_track.get(i, [])) for i in range(count)]


def write_midi(
    notes: Iterable[Note] | Mapping[str, Iterable[Note]],
    path: PathOrFile,
    *,
    bpm: float = 120.0,
    tempo_changes: Sequence[tuple[float, float]] = (),
    ticks_per_beat: int = DEFAULT_TICKS_PER_BEAT,
    track_name: str = "notes",
    track_names: Sequence[str] = (),
) -> None:
    """Write a type-1 MIDI file with one named track per part; the first carries the tempo map.

    `notes` is a mapping of track name to notes, e.g. ``{"player": played,
    "improv": answered}`` (a two-part session is a two-track file), or a list
    of notes, each written to the track its `track` index names: what
    `read_midi` gives comes back note for note, in the tracks it came from.
    Those tracks are called `track_names[i]` where given, else `track_name`
    (one track) or "`track_name` i". `tempo_changes` lists (seconds, bpm)
    after the initial `bpm`; note times stay in seconds whatever the tempo,
    the tempo only sets the tick grid a sequencer shows them on.
    """
    if bpm <= 0:
        raise ValueError(f"bpm must be > 0, got {bpm}")
    if isinstance(notes, Mapping):
        parts = [(name, list(part)) for name, part in notes.items()] or [(track_name, [])]
    else:
        parts = _parts(notes, track_name, track_names)
    tempo = _seconds_to_tempo_map(bpm, tempo_changes, ticks_per_beat)
    conductor: list[tuple[int, mido.MetaMessage]] = [(0, mido.MetaMessage("time_signature", numerator=4, denominator=4))]
    for tick, seconds_per_tick in zip(tempo.ticks, tempo.seconds_per_tick):
        conductor.append((tick, mido.MetaMessage("set_tempo", tempo=round(seconds_per_tick * ticks_per_beat * 1e6))))
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    for i, (name, part) in enumerate(parts):
        timed: list[tuple[int, mido.Message | mido.MetaMessage]] = list(_track_messages(part, tempo))
        if i == 0:  # stable sort: at one tick, the tempo comes before the notes
            timed = sorted([*conductor, *timed], key=lambda item: item[0])
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=name, time=0))
        last = 0
        for tick, msg in timed:
            track.append(msg.copy(time=tick - last))
            last = tick
        midi.tracks.append(track)
    if isinstance(path, (str, os.PathLike)):
        midi.save(os.fspath(path))
    else:
        midi.save(file=path)


def track_names(path: PathOrFile) -> list[str]:
    """The names of a file's tracks, in order ('' where a track has none)."""
    midi = _load(path)
    names = []
    for track in midi.tracks:
        names.append(next((m.name for m in track if m.type == "track_name"), ""))
    return names


def read_midi_tracks(path: PathOrFile) -> dict[str, list[Note]]:
    """Notes per named track (tracks without notes left out), e.g. `player` and `improv`.

    Tracks that share a name share an entry; each note's `track` still says which one it came from.
    """
    midi = _load(path)
    maps = _tempo_maps(midi, _describe(path))
    end_tick = max(sum(msg.time for msg in track) for track in midi.tracks)
    parts: dict[str, list[Note]] = {}
    for index, (track, tempo) in enumerate(zip(midi.tracks, maps)):
        notes = _track_notes(track, tempo, end_tick, index)
        if notes:
            name = next((m.name for m in track if m.type == "track_name"), "") or f"track{index}"
            parts.setdefault(name, []).extend(notes)
    return {name: sort_notes(notes) for name, notes in parts.items()}
