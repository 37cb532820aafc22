"""Files per second read from a folder of MIDI files: parsed cold (one process, and worker processes) and warm (the cache).

Usage: python benchmarks/folder_read.py [--files N] [--notes N] [--workers N] [--json]

Builds a temporary folder of N MIDI files of random notes (written by improv.write_midi, one to
three tracks each) and a temporary cache, then reads it as `improv train FOLDER` does: cold with
one process, cold with the worker pool (a fresh cache), and warm from that cache. Prints a plain
table: case, files, seconds, files per second, ratio to the one-process cold read.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from improv import Note, write_midi
from improv.data.folder import default_workers, read_folder


def build_folder(folder: Path, files: int, notes: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(files):
        tracks = {}
        for track in range(int(rng.integers(1, 4))):
            t, part = 0.0, []
            for _ in range(notes // (track + 1)):
                part.append(Note(int(rng.integers(30, 100)), int(rng.integers(20, 127)), t,
                                 float(rng.choice([0.1, 0.25, 0.5, 1.0])), track))
                t += float(rng.choice([0.0, 0.125, 0.25, 0.5]))
            tracks[f"part{track}"] = part
        write_midi(tracks, folder / f"{i // 100:02d}" / f"piece{i:05d}.mid")


def timed(folder: Path, cache: Path | None, workers: int) -> tuple[float, int]:
    began = time.perf_counter()
    read = read_folder([folder], workers=workers, use_cache=cache is not None, cache_file=cache, show_progress=False)
    return time.perf_counter() - began, len(read.works)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--notes", type=int, default=400, help="notes per file (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="improv-folder-bench-") as temporary:
        root = Path(temporary)
        (root / "music").mkdir()
        for sub in range((args.files + 99) // 100):
            (root / "music" / f"{sub:02d}").mkdir()
        build_folder(root / "music", args.files, args.notes)
        rows = []
        for case, cache, workers in (
            ("cold, 1 process", None, 1),
            (f"cold, {args.workers} workers", root / "cache.sqlite3", args.workers),
            ("warm (cache)", root / "cache.sqlite3", args.workers),
        ):
            seconds, works = timed(root / "music", cache, workers)
            assert works == args.files, f"{case}: read {works} of {args.files} files"
            rows.append({"case": case, "files": args.files, "seconds": round(seconds, 3),
                         "files_per_s": round(args.files / seconds, 1)})
    base = rows[0]["seconds"]
    for row in rows:
        row["ratio"] = round(base / row["seconds"], 2)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'case':<22} {'files':>6} {'seconds':>8} {'files/s':>9} {'ratio':>6}")
    for row in rows:
        print(f"{row['case']:<22} {row['files']:>6} {row['seconds']:>8.3f} {row['files_per_s']:>9.1f} {row['ratio']:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
