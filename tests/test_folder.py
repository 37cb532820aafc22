"""Reading folders of MIDI files: bad files skipped with their reasons, the cache, parallel workers, the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from improv import Note, read_midi, write_midi
from improv.cli import main
from improv.data.folder import SERIAL_BELOW, pack_notes, read_folder, unpack_notes


def tune(rng: np.random.Generator, count: int = 40, channel: int = 0) -> list[Note]:
    t, notes = 0.0, []
    for _ in range(count):
        notes.append(Note(int(rng.integers(40, 90)), int(rng.integers(30, 120)), t, 0.25, channel))
        t += float(rng.choice([0.125, 0.25, 0.5]))
    return notes


def write_folder(folder: Path, good: int = 4, seed: int = 0) -> list[Path]:
    """`good` tunes, then a corrupt file, an empty file, a text file named .mid and a drums-only file."""
    rng = np.random.default_rng(seed)
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(good):
        paths.append(folder / ("sub" if i % 2 else "") / f"tune{i:02d}.mid")
        write_midi(tune(rng), paths[-1])
    (folder / "corrupt.mid").write_bytes(paths[0].read_bytes()[:40])
    (folder / "empty.mid").write_bytes(b"")
    (folder / "notes.mid").write_text("not a MIDI file at all\n")
    write_midi(tune(rng, channel=9), folder / "drums.midi")
    (folder / "readme.txt").write_text("not a .mid name: not looked at\n")
    return paths


def test_bad_files_are_skipped_each_with_its_reason_and_the_rest_read(tmp_path: Path) -> None:
    good = write_folder(tmp_path / "music")
    lines: list[str] = []
    read = read_folder([tmp_path / "music"], cache_file=tmp_path / "cache.sqlite3", workers=1, show_progress=False,
                       warn=lines.append)
    assert [name for name, _ in read.works] == sorted(map(str, good))
    for name, notes in read.works:
        assert notes == read_midi(name)
    reasons = {Path(path).name: reason for path, reason in read.skipped}
    assert reasons.keys() == {"corrupt.mid", "empty.mid", "notes.mid", "drums.midi"}
    assert reasons["empty.mid"] == "empty file (0 bytes)"
    assert "ends too early" in reasons["corrupt.mid"]
    assert "not a valid MIDI file" in reasons["notes.mid"]
    assert "--include-drums" in reasons["drums.midi"]
    assert all("\n" not in reason and str(tmp_path) not in reason for reason in reasons.values())  # one line each
    assert len(lines) == 4 and all(line.startswith("skipped ") for line in lines)
    assert read.skipped_lines().count("\n") == 4
    with_drums = read_folder([tmp_path / "music"], include_drums=True, cache_file=tmp_path / "cache.sqlite3",
                             show_progress=False)
    assert len(with_drums.works) == len(good) + 1


def test_a_second_run_reads_the_cache_and_an_edited_file_is_parsed_again(tmp_path: Path) -> None:
    good = write_folder(tmp_path / "music")
    cache = tmp_path / "cache.sqlite3"
    first = read_folder([tmp_path / "music"], cache_file=cache, workers=1, show_progress=False)
    assert (first.parsed, first.cached) == (len(good) + 3, 0)  # the empty file is never parsed
    second = read_folder([tmp_path / "music"], cache_file=cache, workers=1, show_progress=False)
    assert (second.parsed, second.cached) == (0, len(good) + 3)
    assert second.works == first.works and second.skipped == first.skipped
    write_midi([Note(60, 90, 0.0, 1.0)], good[1])  # other size: the cache entry no longer matches
    os.utime(good[2], ns=(1, 1))  # same bytes, other mtime: read again too
    third = read_folder([tmp_path / "music"], cache_file=cache, workers=1, show_progress=False)
    assert (third.parsed, third.cached) == (2, len(good) + 1)
    assert dict(third.works)[str(good[1])] == [Note(60, 90, 0.0, 1.0)]
    player = read_folder([tmp_path / "music"], player_only=True, cache_file=cache, workers=1, show_progress=False)
    assert player.parsed == len(good) + 3  # another reading of the files, cached apart


def test_worker_processes_read_what_one_process_reads(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    (tmp_path / "music").mkdir()
    for i in range(SERIAL_BELOW):
        write_midi(tune(rng, 12), tmp_path / "music" / f"t{i:02d}.mid")
    (tmp_path / "music" / "bad.mid").write_text("nope")
    alone = read_folder([tmp_path / "music"], workers=1, use_cache=False, show_progress=False)
    pooled = read_folder([tmp_path / "music"], workers=2, use_cache=False, show_progress=False)
    assert pooled.works == alone.works and len(pooled.works) == SERIAL_BELOW
    assert pooled.skipped == alone.skipped and len(pooled.skipped) == 1


def test_packed_notes_come_back_exactly() -> None:
    notes = [Note(0, 1, 0.0, 0.0), Note(127, 127, 1234.5678901, 0.001, 15, 65535), Note(60, 64, 1 / 3, 2 / 3, 9, 2)]
    assert unpack_notes(pack_notes(notes)) == notes
    assert unpack_notes(pack_notes([])) == []


def test_improv_train_on_a_folder_with_bad_files_lists_them_in_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # not the user's cache
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    write_folder(tmp_path / "music", good=6)
    out = tmp_path / "m.pt"
    code = main(["train", str(tmp_path / "music"), "--out", str(out), "--epochs", "1", "--hidden", "16",
                 "--rhythm-hidden", "8", "--batch", "4", "--length", "16", "--threads", "1", "--device", "cpu"])
    assert code == 0 and out.is_file()
    listed = (tmp_path / "m.run" / "skipped-files.tsv").read_text().splitlines()
    assert sorted(Path(line.split("\t")[0]).name for line in listed) == ["corrupt.mid", "drums.midi", "empty.mid",
                                                                         "notes.mid"]
    err = capsys.readouterr().err
    assert "6 files read, 4 skipped (9 parsed, 0 from the cache)" in err
    assert "skipped " + str(tmp_path / "music" / "empty.mid") + ": empty file (0 bytes)" in err
    summary = json.loads((tmp_path / "m.run" / "summary.json").read_text())
    assert summary["skipped_files"] == 4 and summary["world_size"] == 1
    assert summary["train_events_per_rank"] == [summary["train_events"]]
    assert (tmp_path / "cache" / "improv" / "midi-files.sqlite3").is_file()
