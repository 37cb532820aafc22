"""The music improv is evaluated on: the default corpus split, the out-of-corpus sets, any MIDI folder.

Each set is a list of event arrays; `sequences_key` names a set for caches."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from improv.data.dataset import EventArrays, load_midi_files, to_sequence
from improv.errors import ImprovError
from improv.music.events import Event, Note, events_to_notes

Say = Callable[[str], None]


def _quiet(text: str) -> None:
    pass


def default_corpus_split(say: Say = _quiet, collections: Sequence[str] = ()) -> tuple[list[EventArrays], list[EventArrays]]:
    """Train and held-out works of the default corpus as event arrays (parsed once, then cached by corpus.py).

    `collections` (tune collections of `tunes.TUNE_COLLECTIONS`) add their training tunes to
    the training side; the held-out side stays the default set's held-out works.
    """
    try:
        from improv.data.corpus import load_default_corpus
        from improv.data.tunes import load_tunes
    except ImportError as error:  # music21 missing
        raise ImprovError(f"the default corpus needs music21: pip install 'improv[train]' ({error})") from None

    def progress(done: int, total: int, name: str) -> None:
        if done % 50 == 0 or done == total:
            say(f"parsed {done}/{total} corpus files")

    works = load_default_corpus(progress=progress)
    for collection in collections:
        works = works + [w for w in load_tunes(collection, progress=progress) if w.split == "train"]
    train = [to_sequence(w.name, w.notes, w.has_dynamics) for w in works if w.split == "train"]
    valid = [to_sequence(w.name, w.notes, w.has_dynamics) for w in works if w.split == "valid"]
    return train, valid


def out_of_corpus_set(say: Say = _quiet) -> list[EventArrays]:
    """The out-of-corpus set: every tune of `tunes.OUT_OF_CORPUS_COLLECTION` (never trained on)."""
    try:
        from improv.data.tunes import OUT_OF_CORPUS_COLLECTION, load_tunes
    except ImportError as error:  # music21 missing
        raise ImprovError(f"the out-of-corpus set needs music21: pip install 'improv[train]' ({error})") from None

    def progress(done: int, total: int, name: str) -> None:
        say(f"parsed {done}/{total} {OUT_OF_CORPUS_COLLECTION} files")

    works = load_tunes(OUT_OF_CORPUS_COLLECTION, progress=progress)
    return [to_sequence(w.name, w.notes, w.has_dynamics) for w in works]


def madrigal_set(say: Say = _quiet) -> list[EventArrays]:
    """The second out-of-corpus set: Monteverdi's madrigals (`tunes.load_madrigals`, never trained on)."""
    try:
        from improv.data.tunes import load_madrigals
    except ImportError as error:  # music21 missing
        raise ImprovError(f"the madrigal set needs music21: pip install 'improv[train]' ({error})") from None

    works = load_madrigals(progress=lambda done, total, name: say(f"parsed {done}/{total} madrigals"))
    return [to_sequence(w.name, w.notes, w.has_dynamics) for w in works]


def music_seconds(seq: EventArrays) -> float:
    """How long a work lasts: from its first onset to the end of its last note."""
    if not len(seq):
        return 0.0
    onsets = np.cumsum(seq.step) - seq.step[0]
    return float(np.max(onsets + seq.duration))


def sequences_from_files(paths: Sequence[Path], say: Say = _quiet) -> list[EventArrays]:
    """Event arrays of every readable MIDI file under `paths`; none readable is an ImprovError."""
    for path in paths:
        if not path.exists():
            raise ImprovError(f"{path}: no such file or folder")
    works, skipped = load_midi_files(paths, warn=say)
    if not works:
        where = " ".join(map(str, paths))
        raise ImprovError(f"no readable MIDI notes in {where}" + (f" ({skipped} files skipped)" if skipped else ""))
    return [to_sequence(name, notes) for name, notes in works]


def notes_of(seq: EventArrays) -> list[Note]:
    """The notes of a work back from its event arrays (exact: times are on the microsecond grid)."""
    events = [
        Event(int(p), float(s), float(d), int(v))
        for p, s, d, v in zip(seq.pitch.tolist(), seq.step.tolist(), seq.duration.tolist(), seq.velocity.tolist())
    ]
    return events_to_notes(events)


def sequences_key(sequences: Sequence[EventArrays]) -> str:
    """A digest of the data itself, so caches follow the data, not file names or dates."""
    h = hashlib.sha1()
    for seq in sequences:
        h.update(seq.name.encode() + b"\0" + bytes([seq.has_velocity]))
        for array in (seq.pitch, seq.step, seq.duration, seq.velocity):
            h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]
