"""`improv train PATH...`: the user's files read once per machine, with the files skipped listed in the run folder."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from improv.data.folder import FolderRead, read_folder
from improv.music.events import Note
from improv.training.distributed import Distributed

SKIPPED_SHOWN = 20  # skipped files named on the terminal; the run folder's list names them all
SKIP_LIST = "skipped-files.tsv"


def run_dir_of(args: argparse.Namespace) -> Path:
    return args.run_dir or args.out.with_suffix(".run")


def read_training_files(
    args: argparse.Namespace, ddp: Distributed, say: Callable[[str], None], player_only: bool = False
) -> tuple[list[tuple[str, list[Note]]], int]:
    """(path, notes) per usable file and how many were skipped, as `load_midi_files` gives them.

    Under torchrun the first process of each machine parses (in worker processes, behind a progress
    bar) and fills the cache; the others wait for it and read the cache. Rank 0 writes every skipped
    file with its reason to `skipped-files.tsv` in the run folder.
    """
    shown = [0]

    def warn(text: str) -> None:
        shown[0] += 1
        if shown[0] <= SKIPPED_SHOWN:
            say(text)

    with ddp.local_main_first() as first:
        read = read_folder(args.paths, include_drums=args.include_drums, player_only=player_only,
                           show_progress=ddp.is_main and first, warn=warn if ddp.is_main else None)
    if ddp.is_main:
        _report(read, run_dir_of(args), say)
    return read.works, len(read.skipped)


def _report(read: FolderRead, run_dir: Path, say: Callable[[str], None]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    listing = run_dir / SKIP_LIST
    listing.write_text(read.skipped_lines())
    more = len(read.skipped) - SKIPPED_SHOWN
    if more > 0:
        say(f"... and {more} more skipped files")
    say(f"{len(read.works)} files read, {len(read.skipped)} skipped "
        f"({read.parsed} parsed, {read.cached} from the cache)"
        + (f"; skipped files and why: {listing}" if read.skipped else ""))
