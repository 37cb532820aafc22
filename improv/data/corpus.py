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
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence


from improv.music.events import Note

from improv.data.scores import (  # noqa: F401  (re-exported: the corpus's readers and constants)
    ACCENT_BOOST,
    ACCENT_THEN_LEVEL,
    DEFAULT_SECONDS_PER_QUARTER,
    DEFAULT_VELOCITY,
    DYNAMIC_VELOCITY,
    _Dynamics,
    _extract_arrays,
    _extract_stream,
    _Extracted,
    _extract_task,
    _TempoMap,
    extract_work,
    notes_from_score,
)

from improv.data.corpus_cache import EXTRACTOR_VERSION, _load_cache, _save_cache, default_cache_dir  # noqa: F401

log = logging.getLogger(__name__)


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




def cache_path(cache_dir: Path | None = None, paths: Sequence[tuple[str, str, Path]] | None = None) -> Path:
    """Where the extracted default corpus is cached: keyed by music21 and extractor versions
    and by the selected work names."""
    import music21

    paths = default_work_paths() if paths is None else paths
    selection = hashlib.sha1("\n".join(name for name, _, _ in paths).encode("utf-8")).hexdigest()[:10]
    directory = default_cache_dir() if cache_dir is None else Path(cache_dir)
    return directory / f"corpus-music21-{music21.__version__}-x{EXTRACTOR_VERSION}-{selection}.npz"


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
