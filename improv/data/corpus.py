"""The default training corpus: scores bundled with music21, turned into notes.

Offline only (training and evaluation); the live path never imports this.
The selection and the held-out split follow /work/shared/CORPUS.md §4:
keyboard works, piano with other instruments, string quartets and chorales,
about 319 k notes. Each file becomes one `Work` whose parts are merged into a
single polyphonic stream of `Note`s, as a pianist would play a reduction:

* times are seconds at the notated tempo (metronome marks and tempo words
  that music21 can read; quarter = 120 where nothing is marked);
* repeats are not expanded: the score is read once, in notated order;
* tied notes become one note, chords become their notes, grace notes,
  chord symbols and unpitched (percussion) notes are dropped, pitches are
  sounding pitches (transposing instruments and 8va lines resolved) and
  those outside 0-127 are dropped;
* two parts striking the same pitch at the same onset (a unison doubling)
  become one note, the longer and louder of the two: a keyboard has one key
  per pitch. `Work.merged_unisons` counts them;
* velocity comes from dynamic markings (`DYNAMIC_VELOCITY`), per part, and
  is `DEFAULT_VELOCITY` before the first marking or where there is none.

Parsing takes minutes, so `load_default_corpus` parses in worker processes
and caches compact arrays in the user cache directory; later loads take
seconds. Licences of the scores are mixed: never commit extracted notes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import tempfile
import warnings
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from improv.music.events import Note, quantize_time

log = logging.getLogger(__name__)

# Bump when extraction changes what notes come out; old caches are then ignored.
EXTRACTOR_VERSION = 1

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

SPLITS = ("train", "valid", "seed", "test")  # test: out-of-corpus sets (data/tunes.py), never trained on
CATEGORIES = ("piano_solo", "piano_plus", "string_quartet", "chorale")

# Held out by piece: every movement of these goes to "valid".
VALID_PIECES = frozenset({"mozart/k458", "beethoven/opus59no3", "chopin/mazurka06-2", "schubert/Lindenbaum"})
# Never trained on: kept to seed generation.
SEED_PIECES = frozenset({"mozart/k545"})
CHORALE_VALID_MODULUS = 10

# Files relative to the music21 corpus directory (CORPUS.md §1 and §4).
_PIANO_SOLO_FILES = (
    "bach/bwv846.mxl",
    "chopin/mazurka06-2.krn",
    "cpebach/h186.mxl",
    "joplin/maple_leaf_rag.mxl",
    "mozart/k545/movement1_exposition.mxl",
    "schoenberg/opus19/movement2.mxl",
    "schoenberg/opus19/movement6.mxl",
    "schumann_clara/polonaise_op1n1.mxl",
    "schumann_clara/polonaise_op1n2.mxl",
    "schumann_clara/polonaise_op1n3.mxl",
    "schumann_clara/polonaise_op1n4.mxl",
    "verdi/laDonnaEMobile.mxl",
)
_PIANO_PLUS_FILES = (
    "beach/prayer_of_a_tired_child.musicxml",
    "handel/rinaldo/Lascia_chio_pianga.mxl",
    "liliuokalani/aloha_oe.mxl",
    "schubert/Lindenbaum.xml",
    "schumann_clara/opus17/movement3.xml",
    # schumann_robert/opus48no2.mxl is the same song: one of the 8 duplicates.
    "schumann_robert/dichterliebe_no2.xml",
    "weber/concertino_clarinet.mxl",
)
# Globs; beethoven/opus18no1/*.krn (duplicates of the .mxl) do not match.
_STRING_QUARTET_GLOBS = (
    "beethoven/*.mxl",
    "beethoven/*/*.mxl",
    "mozart/k80/*.mxl",
    "mozart/k155/*.mxl",
    "mozart/k156/*.mxl",
    "mozart/k458/*.mxl",
    "haydn/*/*.mxl",
    "schumann_robert/opus41no1/*.mxl",
    "corelli/opus3no1/*.xml",
)
# bach/*.krn (bwv277, 281, 366) duplicate .mxl files; bwv846 is keyboard music.
_CHORALE_GLOBS = ("bach/*.mxl", "bach/*.xml", "johnson_j_r/*.mxl")
_CHORALE_EXCLUDED = frozenset({"bach/bwv846"})


@dataclass(frozen=True)
class Work:
    """One score file as a merged note stream.

    `name` is the file's path in the music21 corpus without its extension,
    e.g. "bach/bwv1.6" or "mozart/k458/movement1"; movements of one piece
    share `piece` and always share a split.
    """

    name: str
    category: str
    split: str
    notes: list[Note]
    has_dynamics: bool
    merged_unisons: int = 0

    @property
    def piece(self) -> str:
        return piece_of(self.name)


def corpus_dir() -> Path:
    """The directory of the corpus bundled in the installed music21."""
    from music21 import common

    return Path(common.getCorpusFilePath())


def work_name(path: Path, root: Path | None = None) -> str:
    """A file's work name: its corpus-relative path without extension."""
    relative = path.relative_to(root or corpus_dir())
    return relative.with_suffix("").as_posix()


def piece_of(name: str) -> str:
    """The piece a work belongs to: a movement's directory, else the work itself.

    "mozart/k458/movement1" -> "mozart/k458"; "bach/bwv1.6" -> "bach/bwv1.6".
    """
    parts = name.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 else name


def chorale_hash(name: str) -> int:
    """The stable hash that holds chorales out: the first 32 bits of sha1(name).

    This (not the whole digest) is what produced CORPUS.md's 36 valid chorales.
    """
    return int(hashlib.sha1(name.encode("utf-8")).hexdigest()[:8], 16)


def split_for(name: str, category: str) -> str:
    """Which side of the held-out split a work is on: "train", "valid" or "seed".

    Decided by piece, so movements never straddle the split. Chorales are
    held out by a stable hash of the work name (about 1 in 10).
    """
    piece = piece_of(name)
    if piece in SEED_PIECES:
        return "seed"
    if piece in VALID_PIECES:
        return "valid"
    if category == "chorale":
        if chorale_hash(name) % CHORALE_VALID_MODULUS == 0:
            return "valid"
    return "train"


def default_work_paths(root: Path | None = None) -> list[tuple[str, str, Path]]:
    """The default set as (name, category, file path), sorted by name; no parsing.

    A listed file missing from this music21 installation is skipped with a warning.
    """
    root = root or corpus_dir()
    found: dict[str, tuple[str, str, Path]] = {}

    def add(path: Path, category: str) -> None:
        name = work_name(path, root)
        if name in found:
            raise RuntimeError(f"corpus work {name} listed twice ({found[name][2]} and {path})")
        found[name] = (name, category, path)

    for category, files in (("piano_solo", _PIANO_SOLO_FILES), ("piano_plus", _PIANO_PLUS_FILES)):
        for relative in files:
            path = root / relative
            if path.is_file():
                add(path, category)
            else:
                log.warning("corpus file %s is missing from music21's corpus; skipped", relative)
    for category, globs in (("string_quartet", _STRING_QUARTET_GLOBS), ("chorale", _CHORALE_GLOBS)):
        for pattern in globs:
            for path in sorted(root.glob(pattern)):
                if category == "chorale" and work_name(path, root) in _CHORALE_EXCLUDED:
                    continue
                add(path, category)
    return [found[name] for name in sorted(found)]




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


# --------------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("improv"))


def cache_path(cache_dir: Path | None = None, paths: Sequence[tuple[str, str, Path]] | None = None) -> Path:
    """Where the extracted default corpus is cached: keyed by music21 and extractor versions
    and by the selected work names."""
    import music21

    paths = default_work_paths() if paths is None else paths
    selection = hashlib.sha1("\n".join(name for name, _, _ in paths).encode("utf-8")).hexdigest()[:10]
    directory = default_cache_dir() if cache_dir is None else Path(cache_dir)
    return directory / f"corpus-music21-{music21.__version__}-x{EXTRACTOR_VERSION}-{selection}.npz"


def _save_cache(path: Path, extracted: dict[str, _Extracted], failed: dict[str, str]) -> None:
    names = sorted(extracted)
    bounds = np.zeros(len(names) + 1, dtype=np.int64)
    bounds[1:] = np.cumsum([len(extracted[name].pitch) for name in names])

    def joined(field: str, dtype: Any) -> np.ndarray:
        arrays = [getattr(extracted[name], field) for name in names]
        return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp.npz")
    os.close(handle)
    try:
        np.savez_compressed(
            temporary,
            names=np.array(names, dtype=str),
            bounds=bounds,
            has_dynamics=np.array([extracted[name].has_dynamics for name in names], dtype=bool),
            merged_unisons=np.array([extracted[name].merged_unisons for name in names], dtype=np.int64),
            pitch=joined("pitch", np.uint8),
            velocity=joined("velocity", np.uint8),
            start=joined("start", np.float64),
            duration=joined("duration", np.float64),
            failed=np.array(json.dumps(failed)),
            extractor_version=np.array(EXTRACTOR_VERSION),
        )
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _load_cache(path: Path) -> tuple[dict[str, _Extracted], dict[str, str]]:
    with np.load(path, allow_pickle=False) as data:
        if int(data["extractor_version"]) != EXTRACTOR_VERSION:
            raise ValueError(f"cache {path} is from extractor version {int(data['extractor_version'])}")
        names = data["names"].tolist()
        bounds = data["bounds"]
        fields = {key: data[key] for key in ("pitch", "velocity", "start", "duration")}
        has_dynamics = data["has_dynamics"].tolist()
        merged = data["merged_unisons"].tolist()
        failed = json.loads(str(data["failed"]))
    extracted = {
        name: _Extracted(
            *(fields[key][bounds[i] : bounds[i + 1]] for key in ("pitch", "velocity", "start", "duration")),
            has_dynamics=has_dynamics[i],
            merged_unisons=merged[i],
        )
        for i, name in enumerate(names)
    }
    return extracted, failed


# ---------------------------------------------------------------------- load

Progress = Callable[[int, int, str], None]


def _parse_all(
    tasks: list[tuple[str, str]], workers: int, progress: Progress | None, task_fn: Callable[[tuple[str, str]], Any] | None = None
) -> Any:
    """Run `task_fn` (default: one work per file) over the tasks in `workers` processes.

    With the default, (extracted, failed) by work name; with another `task_fn`, its results in a list.
    """
    extracted: dict[str, _Extracted] = {}
    failed: dict[str, str] = {}
    results: list[Any] = []

    def collect(done: int, result: tuple[str, Any, str]) -> None:
        name, arrays, error = result
        if task_fn is not None:
            results.append(result)
        elif arrays is None:
            failed[name] = error
            log.warning("skipped corpus work %s: %s", name, error)
        else:
            extracted[name] = arrays
        if progress is not None:
            progress(done, len(tasks), name)

    function = task_fn or _extract_task
    if workers <= 1:
        for done, task in enumerate(tasks, 1):
            collect(done, function(task))
    else:
        # spawn, not fork: the caller may hold torch threads, which do not survive fork
        context = multiprocessing.get_context("spawn")
        with context.Pool(processes=workers) as pool:
            for done, result in enumerate(pool.imap_unordered(function, tasks, chunksize=1), 1):
                collect(done, result)
    return results if task_fn is not None else (extracted, failed)


def load_works(
    paths: Sequence[tuple[str, str, Path]],
    cache_file: Path | None = None,
    workers: int = 2,
    progress: Progress | None = None,
) -> list[Work]:
    """Extract the given (name, category, path) works, through `cache_file` if given.

    A file that fails to parse is skipped with a one-line warning (and again on
    every cached load); it never aborts the load.
    """
    extracted: dict[str, _Extracted] | None = None
    failed: dict[str, str] = {}
    if cache_file is not None and cache_file.is_file():
        try:
            extracted, failed = _load_cache(cache_file)
        except Exception as error:  # noqa: BLE001 - a bad cache is rebuilt, not fatal
            log.warning("ignoring unreadable corpus cache %s: %s", cache_file, " ".join(str(error).split()))
            extracted = None
        else:
            wanted = {name for name, _, _ in paths}
            if set(extracted) | set(failed) != wanted:
                log.warning("corpus cache %s holds other works; rebuilding it", cache_file)
                extracted = None
            else:
                for name, error in sorted(failed.items()):
                    log.warning("skipped corpus work %s: %s", name, error)
    if extracted is None:
        # biggest files first, so the two workers finish together
        ordered = sorted(paths, key=lambda item: -item[2].stat().st_size)
        extracted, failed = _parse_all([(name, str(path)) for name, _, path in ordered], workers, progress)
        if cache_file is not None:
            _save_cache(cache_file, extracted, failed)

    works = []
    for name, category, _ in paths:
        if name in extracted:
            result = extracted[name]
            works.append(
                Work(name, category, split_for(name, category), result.notes(), result.has_dynamics, result.merged_unisons)
            )
    return works


def load_default_corpus(
    cache_dir: Path | None = None,
    workers: int = 2,
    progress: Progress | None = None,
) -> list[Work]:
    """The default training corpus (CORPUS.md §4), one `Work` per file, sorted by name.

    The first call parses for a few minutes in `workers` processes and caches
    the notes under `cache_dir` (default: the user cache directory); later
    calls read the cache in seconds. `progress(done, total, name)` is called
    after each parsed file. Call it under `if __name__ == "__main__":` in
    scripts, as worker processes are spawned.
    """
    paths = default_work_paths()
    return load_works(paths, cache_path(cache_dir, paths), workers, progress)


def corpus_summary(works: Iterable[Work]) -> dict[str, Any]:
    """Counts for the model card: works, notes and pieces per split and category."""
    works = list(works)
    summary: dict[str, Any] = {
        "works": len(works),
        "notes": sum(len(work.notes) for work in works),
        "merged_unisons": sum(work.merged_unisons for work in works),
        "hours": round(sum(max((n.end for n in work.notes), default=0.0) for work in works) / 3600, 2),
        "by_split": {},
        "by_category": {},
        "valid_pieces": sorted({work.piece for work in works if work.split == "valid"}),
    }
    for key, field in (("by_split", "split"), ("by_category", "category")):
        notes: Counter[str] = Counter()
        count: Counter[str] = Counter()
        with_dynamics: Counter[str] = Counter()
        for work in works:
            group = getattr(work, field)
            notes[group] += len(work.notes)
            count[group] += 1
            with_dynamics[group] += work.has_dynamics
        summary[key] = {
            group: {"works": count[group], "notes": notes[group], "with_dynamics": with_dynamics[group]}
            for group in sorted(count)
        }
    cross: dict[str, dict[str, int]] = {}
    for work in works:
        cross.setdefault(work.category, Counter())[work.split] += len(work.notes)
    summary["notes_by_category_and_split"] = {category: dict(counts) for category, counts in sorted(cross.items())}
    return summary


def _main() -> None:
    import time

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    began = time.perf_counter()

    def report(done: int, total: int, name: str) -> None:
        if done % 25 == 0 or done == total:
            print(f"{done}/{total} {name} {time.perf_counter() - began:.0f} s", flush=True)

    works = load_default_corpus(progress=report)
    print(f"loaded {len(works)} works in {time.perf_counter() - began:.1f} s from {cache_path()}")
    print(json.dumps(corpus_summary(works), indent=2))


if __name__ == "__main__":
    _main()
