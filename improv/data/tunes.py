"""Tune collections and other sets beside the default corpus: what widens training, what tests it.

ABC files hold many tunes; each tune becomes a `Work` of its own, named `file#number`. Parsed in
worker processes once, then cached in the user cache directory like the default corpus.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path

from improv.data.corpus import (
    CHORALE_VALID_MODULUS,
    EXTRACTOR_VERSION,
    Progress,
    Work,
    _extract_stream,
    _Extracted,
    _load_cache,
    _parse_all,
    _save_cache,
    cache_path,
    chorale_hash,
    corpus_dir,
    default_cache_dir,
    load_works,
    work_name,
)

log = logging.getLogger(__name__)

# Tune collections in ABC: one file holds many tunes, and each tune is a work of its own.
# Essen (German, Chinese, ... folk songs) widens training; O'Neill's 1850 collection of Irish
# dance music is never trained on: it is the out-of-corpus set `improv evaluate --set
# out-of-corpus` scores. Essen's irl.abc (Irish tunes) is left out of training, as O'Neill's
# tunes may be among them; so are its test files. O'Neill files that repeat tunes of another
# file (a range inside a wider one, a second transcription) are left out of the evaluation.
TUNE_COLLECTIONS: dict[str, tuple[str, ...]] = {
    "essen": ("essenFolksong/*.abc",),
    "oneills1850": ("oneills1850/*.abc",),
}
_TUNES_EXCLUDED = frozenset({
    "essenFolksong/irl", "essenFolksong/test0", "essenFolksong/test1", "essenFolksong/testd", "essenFolksong/teste",
    "oneills1850/0626-0635", "oneills1850/0732-0758_mh", "oneills1850/1116-1135_ml", "oneills1850/1556-1576",
    "oneills1850/1577-1624", "oneills1850/1710-1750",
})  # fmt: skip
TRAINING_COLLECTIONS = ("essen",)  # added to the default set by `improv train` unless --no-folk
OUT_OF_CORPUS_COLLECTION = "oneills1850"
# A second set never trained on, polyphonic like the default set but from another age, with a
# half-note pulse: Monteverdi's madrigals (books 3-5, five voices; their .rntxt analyses are not notes).
MADRIGAL_GLOB = "monteverdi/*.mxl"


def _extract_tunes_task(task: tuple[str, str]) -> tuple[str, list[tuple[str, _Extracted]] | None, str]:
    """Worker entry for a tune collection file: one (tune name, arrays) per tune with notes.

    Tunes are named `file#number` (the ABC X: number, else the position). A tune that fails
    to extract is left out and named in the third item; a file that fails to parse gives None.
    """
    from music21 import converter, stream

    name, path = task
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = converter.parse(path, forceSource=True)
    except Exception as error:  # noqa: BLE001 - reported as a one-line warning
        return name, None, " ".join(f"{type(error).__name__}: {error}".split())[:300]
    scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
    tunes: list[tuple[str, _Extracted]] = []
    seen: set[str] = set()
    bad: list[str] = []
    for index, score in enumerate(scores, 1):
        number = score.metadata.number if score.metadata is not None else None
        tune = f"{name}#{number or index}"
        if tune in seen:
            tune = f"{name}#{index}"
        seen.add(tune)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                extracted = _extract_stream(score)
        except Exception:  # noqa: BLE001 - counted and named in the warning
            bad.append(tune)
            continue
        if len(extracted.pitch):
            tunes.append((tune, extracted))
    return name, tunes, (f"{len(bad)} tunes failed: {' '.join(bad)[:200]}" if bad else "")


def tune_collection_files(collection: str, root: Path | None = None) -> list[tuple[str, Path]]:
    """(file name, path) of a tune collection (`TUNE_COLLECTIONS`), sorted; no parsing."""
    if collection not in TUNE_COLLECTIONS:
        raise ValueError(f"unknown tune collection {collection!r}; known: {', '.join(sorted(TUNE_COLLECTIONS))}")
    root = root or corpus_dir()
    found = {
        work_name(path, root): path
        for pattern in TUNE_COLLECTIONS[collection]
        for path in root.glob(pattern)
        if work_name(path, root) not in _TUNES_EXCLUDED
    }
    return sorted(found.items())


def tune_split(tune: str, collection: str) -> str:
    """The out-of-corpus collection is all "test"; others hold out a tenth of tunes by hash, like chorales."""
    if collection == OUT_OF_CORPUS_COLLECTION:
        return "test"
    return "valid" if chorale_hash(tune) % CHORALE_VALID_MODULUS == 0 else "train"


def load_tunes(collection: str, cache_dir: Path | None = None, workers: int = 2, progress: Progress | None = None) -> list[Work]:
    """Every tune of a collection as a `Work` (category "folk_melody"), parsed once and then cached."""
    import music21

    files = tune_collection_files(collection)
    selection = hashlib.sha1("\n".join(name for name, _ in files).encode("utf-8")).hexdigest()[:10]
    directory = default_cache_dir() if cache_dir is None else Path(cache_dir)
    cache_file = directory / f"tunes-{collection}-music21-{music21.__version__}-x{EXTRACTOR_VERSION}-{selection}.npz"
    extracted: dict[str, _Extracted] | None = None
    if cache_file.is_file():
        try:
            extracted, failed = _load_cache(cache_file)
        except Exception as error:  # noqa: BLE001 - a bad cache is rebuilt, not fatal
            log.warning("ignoring unreadable corpus cache %s: %s", cache_file, " ".join(str(error).split()))
    if extracted is None:
        ordered = sorted(files, key=lambda item: -item[1].stat().st_size)  # biggest first: workers finish together
        results = _parse_all([(name, str(path)) for name, path in ordered], workers, progress, _extract_tunes_task)
        extracted, failed = {}, {}
        for name, tunes, error in results:
            if error:
                failed[name] = error
            for tune, arrays in tunes or ():
                extracted[tune] = arrays
        _save_cache(cache_file, extracted, failed)
    for name, error in sorted(failed.items()):
        log.warning("corpus file %s: %s", name, error)
    return [
        Work(tune, "folk_melody", tune_split(tune, collection), arrays.notes(), arrays.has_dynamics, arrays.merged_unisons)
        for tune, arrays in sorted(extracted.items())
    ]


def load_madrigals(cache_dir: Path | None = None, workers: int = 2, progress: Progress | None = None) -> list[Work]:
    """Monteverdi's madrigals as works of split "test" (never trained on), parsed once and cached."""
    root = corpus_dir()
    paths = [(work_name(path, root), "madrigal", path) for path in sorted(root.glob(MADRIGAL_GLOB))]
    works = load_works(paths, cache_path(cache_dir, paths), workers, progress)
    return [Work(w.name, w.category, "test", w.notes, w.has_dynamics, w.merged_unisons) for w in works]
