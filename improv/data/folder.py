"""Reading folders of MIDI files of any size: parallel parsing, a cache, and a list of the files skipped.

A large collection (the Lakh MIDI set holds about 170,000 files) is parsed in worker processes
behind a progress bar. What each file gave (its notes, or why it could not be read) is cached in
the user cache directory, keyed by the file's path, size and modification time, so the second run
over the same folder starts at once and an edited file is read again. A bad file never stops the
run: it is skipped with a one-line reason, counted, and listed.

Offline only: never imported by the live path.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from improv.music.events import Note

PARSER_VERSION = 1  # raise when reading a file would give other notes: older cache entries are then read again
SERIAL_BELOW = 24  # fewer files to parse than this: parse in this process, starting workers costs more
COMMIT_EVERY = 500  # parsed files per cache transaction, so an interrupted first run keeps most of its work

NOTE_DTYPE = np.dtype(
    [("pitch", "u1"), ("velocity", "u1"), ("start", "f8"), ("duration", "f8"), ("channel", "u1"), ("track", "u2")]
)  # the fields of `Note`, in its order


@dataclass
class FolderRead:
    """What reading some files and folders gave."""

    works: list[tuple[str, list[Note]]] = field(default_factory=list)  # (path, notes) per file with notes
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, one-line reason) per file not used
    parsed: int = 0  # files parsed in this run
    cached: int = 0  # files whose result came from the cache

    def skipped_lines(self) -> str:
        """The skip list as text: one `path<TAB>reason` line per file."""
        return "".join(f"{path}\t{reason}\n" for path, reason in self.skipped)


def default_cache_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("improv")) / "midi-files.sqlite3"


def pack_notes(notes: Sequence[Note]) -> bytes:
    return np.array([(n.pitch, n.velocity, n.start, n.duration, n.channel, n.track) for n in notes], NOTE_DTYPE).tobytes()


def unpack_notes(blob: bytes) -> list[Note]:
    return [Note(*row) for row in np.frombuffer(blob, NOTE_DTYPE).tolist()]


def parse_file(task: tuple[str, bool]) -> tuple[str, bytes | None, str]:
    """Worker entry: (path, packed notes or None, one-line reason). Never raises, so one bad file
    cannot stop the pool. With `player_only`, a saved session gives only its `player` track."""
    from improv.errors import MidiFileError
    from improv.midi.files import read_midi, read_midi_tracks

    path, player_only = task
    try:
        tracks = read_midi_tracks(path) if player_only else {}
        notes = tracks["player"] if "player" in tracks else read_midi(path)
    except MidiFileError as error:
        return path, None, _reason(str(error), path)
    except Exception as error:  # noqa: BLE001 - any reader bug on one file is that file's skip reason
        return path, None, _reason(f"{type(error).__name__}: {error}", path)
    return path, pack_notes(notes), ""


def _reason(message: str, path: str) -> str:
    """One line, without the path the skip list already names."""
    if message.startswith(path + ": "):
        message = message[len(path) + 2 :]
    return " ".join(message.split())[:300]


class ParseCache:
    """Parse results in SQLite, one row per (file path, mode), valid while size and mtime match."""

    def __init__(self, path: Path) -> None:
        self.path, self.error = path, ""  # error: why writing stopped (a full disk, say); reading goes on
        path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(path, timeout=60)
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS files (path TEXT, mode TEXT, size INTEGER, mtime_ns INTEGER, version INTEGER,"
            " notes BLOB, reason TEXT, PRIMARY KEY (path, mode))"
        )
        self.connection.commit()

    def get(self, key: tuple[str, str, int, int]) -> tuple[bytes | None, str] | None:
        """(packed notes or None, reason) when this file, at this size and mtime, was parsed before."""
        path, mode, size, mtime_ns = key
        row = self.connection.execute(
            "SELECT notes, reason FROM files WHERE path = ? AND mode = ? AND size = ? AND mtime_ns = ? AND version = ?",
            (path, mode, size, mtime_ns, PARSER_VERSION),
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def put_many(self, rows: Iterable[tuple[tuple[str, str, int, int], bytes | None, str]]) -> None:
        if self.error:
            return
        try:
            self.connection.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(*key, PARSER_VERSION, blob, reason) for key, blob, reason in rows],
            )
            self.connection.commit()
        except sqlite3.Error as error:
            self.error = str(error)

    def close(self) -> None:
        self.connection.close()


def _open_cache(path: Path | None, warn: Callable[[str], None]) -> ParseCache | None:
    if path is None:
        return None
    try:
        return ParseCache(path)
    except (sqlite3.Error, OSError) as error:
        warn(f"not caching parsed MIDI files: cannot open {path} ({error}); remove it or check its folder")
        return None


def _parse_in_workers(tasks: list[tuple[str, bool]], workers: int) -> Iterable[tuple[str, bytes | None, str]]:
    if workers <= 1 or len(tasks) < SERIAL_BELOW:
        yield from map(parse_file, tasks)
        return
    # spawn, not fork: the caller holds torch threads (and maybe a process group), which do not survive fork
    with multiprocessing.get_context("spawn").Pool(processes=workers) as pool:
        chunk = max(1, min(32, len(tasks) // (workers * 8)))
        yield from pool.imap_unordered(parse_file, tasks, chunksize=chunk)


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 16))


def read_folder(
    paths: Sequence[str | Path],
    include_drums: bool = False,
    player_only: bool = False,
    workers: int | None = None,
    use_cache: bool = True,
    cache_file: Path | None = None,
    show_progress: bool = True,
    warn: Callable[[str], None] | None = None,
) -> FolderRead:
    """Every readable `.mid`/`.midi` file under `paths` as (path, notes), sorted by path; the rest skipped.

    Files the cache (`cache_file`, default: in the user cache directory) knows at the same path, size
    and mtime are not parsed again; the others are parsed in `workers` processes (default: one per
    core, at most 16) and added to it. `warn` hears one line per skipped file.
    """
    from improv.data.dataset import DRUM_CHANNEL, find_midi_files  # here: the workers need no torch

    say = warn or (lambda text: None)
    files = find_midi_files(paths)
    cache = _open_cache(cache_file or default_cache_file(), say) if use_cache else None
    mode = "player" if player_only else "all"
    results: dict[str, tuple[bytes | None, str]] = {}
    keys: dict[str, tuple[str, str, int, int]] = {}
    todo: list[tuple[str, bool]] = []
    hits = 0
    for path in map(str, files):
        try:
            stat = os.stat(path)
        except OSError as error:
            results[path] = (None, f"cannot read it: {error.strerror or error}")
            continue
        if stat.st_size == 0:
            results[path] = (None, "empty file (0 bytes)")
            continue
        keys[path] = (os.path.abspath(path), mode, stat.st_size, stat.st_mtime_ns)
        hit = cache.get(keys[path]) if cache is not None else None
        if hit is None:
            todo.append((path, player_only))
        else:
            results[path], hits = hit, hits + 1
    out = FolderRead(cached=hits, parsed=len(todo))
    with closing(cache) if cache is not None else nullcontext(), _progress(len(todo), show_progress) as advance:
        fresh: list[tuple[tuple[str, str, int, int], bytes | None, str]] = []
        for path, blob, reason in _parse_in_workers(todo, workers or default_workers()):
            results[path] = (blob, reason)
            fresh.append((keys[path], blob, reason))
            if cache is not None and len(fresh) >= COMMIT_EVERY:
                cache.put_many(fresh)
                fresh = []
            advance()
        if cache is not None and fresh:
            cache.put_many(fresh)
        if cache is not None and cache.error:
            say(f"could not cache the parsed files in {cache.path} ({cache.error}); the next run parses them again")
    for path in map(str, files):
        blob, reason = results[path]
        notes = unpack_notes(blob) if blob is not None else []
        if notes and not include_drums:
            notes = [n for n in notes if n.channel != DRUM_CHANNEL]
            if not notes:
                reason = "only drum notes (channel 10); pass --include-drums to keep them"
        elif blob is not None and not notes:
            reason = "no notes"
        if notes:
            out.works.append((path, notes))
        else:
            out.skipped.append((path, reason))
            say(f"skipped {path}: {reason}")
    return out


class _progress:
    """A progress bar on stderr over the files being parsed; `advance()` after each."""

    def __init__(self, total: int, show: bool) -> None:
        self.total, self.show = total, show and total > 0
        self.bar = None

    def __enter__(self) -> Callable[[], None]:
        if not self.show:
            return lambda: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("parsing MIDI files"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=Console(stderr=True))
        self.bar.__enter__()
        task = self.bar.add_task("parse", total=self.total)
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
