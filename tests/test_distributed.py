"""Training in several processes: shards, the single-process no-ops, and a real 2-process torchrun run.

The 2-process run opens sockets between the processes (gloo), so it runs inside a private network
namespace (`unshare -n ../shared/netns.sh`, only loopback and a veth pair inside), with
`torchrun --standalone` and GLOO_SOCKET_IFNAME=lo: nothing it sends can leave the machine. Where
`unshare -n` is refused (no root, no user namespaces) it is skipped with the reason.
"""

from __future__ import annotations

import csv
import re
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from improv import Note, write_midi
from improv.data.dataset import load_midi_files, split_works
from improv.training.distributed import Distributed, assign_shards, setup, shard_events

REPO = Path(__file__).resolve().parents[1]
NETNS = REPO.parent / "shared" / "netns.sh"
PROBE = REPO / "tests" / "support" / "ddp_probe.py"
TINY = ["--hidden", "32", "--rhythm-hidden", "16", "--batch", "8", "--length", "32", "--threads", "1"]


# --- shards --------------------------------------------------------------------------------------


@pytest.mark.parametrize("world_size", [2, 3, 8])
def test_shards_are_disjoint_and_cover_every_work(world_size: int) -> None:
    sizes = list(np.random.default_rng(world_size).integers(2, 900, size=41))
    items = list(range(len(sizes)))
    for epoch in (1, 2, 3):
        shards = [Distributed(rank, rank, world_size, "gloo", "cpu").shard(items, sizes, 7, epoch)
                  for rank in range(world_size)]
        together = [item for shard in shards for item in shard]
        assert sorted(together) == items  # every work once: disjoint and covering
        loads = [sum(sizes[i] for i in shard) for shard in shards]
        assert max(loads) - min(loads) <= max(sizes)  # balanced to within one work
        assert loads == shard_events(sizes, world_size, 7, epoch)


def test_shards_are_drawn_again_every_epoch_and_the_same_on_every_rank() -> None:
    sizes = [100] * 30
    assert (assign_shards(sizes, 2, 1, 1) == assign_shards(sizes, 2, 1, 1)).all()  # no talking needed
    assert (assign_shards(sizes, 2, 1, 1) != assign_shards(sizes, 2, 1, 2)).any()
    assert (assign_shards(sizes, 2, 1, 1) != assign_shards(sizes, 2, 2, 1)).any()


def test_without_torchrun_everything_is_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    one = setup("cpu")
    assert (one.active, one.is_main, one.world_size) == (False, True, 1)
    net = torch.nn.Linear(2, 2)
    assert one.wrap(net) is net
    assert one.sum({"a": 1.5}) == {"a": 1.5}
    assert one.any(False) is False and one.any(True) is True
    assert one.part([1, 2, 3]) == [1, 2, 3]


def test_evaluation_parts_are_disjoint_and_cover() -> None:
    items = list(range(11))
    parts = [Distributed(rank, rank, 3, "gloo", "cpu").part(items) for rank in range(3)]
    assert sorted(sum(parts, [])) == items


# --- two processes -------------------------------------------------------------------------------


def write_folder(folder: Path, works: int = 12, seed: int = 0) -> None:
    """`works` short random tunes, plus a corrupt file, an empty file and a file that is not MIDI."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(works):
        t, notes = 0.0, []
        for _ in range(int(rng.integers(60, 140))):
            notes.append(Note(int(rng.integers(48, 84)), int(rng.integers(40, 110)), t, 0.2))
            t += float(rng.choice([0.125, 0.25, 0.5]))
        write_midi(notes, folder / f"tune{i:02d}.mid")
    (folder / "corrupt.mid").write_bytes((folder / "tune00.mid").read_bytes()[:40])
    (folder / "empty.mid").write_bytes(b"")
    (folder / "not-midi.mid").write_text("a shopping list, not a MIDI file\n")


def namespace_refusal() -> str:
    """Why the 2-process run cannot be closed in a private network namespace here ("" when it can)."""
    if not NETNS.is_file():
        return f"{NETNS} is missing (CI clones the repository with ../shared beside it)"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "unshare -n is refused here: " + " ".join(probe.stderr.split())[:200]
    return ""


@pytest.mark.slow
def test_two_processes_train_one_model_with_identical_ranks(tmp_path: Path) -> None:
    refusal = namespace_refusal()
    if refusal:
        pytest.skip("the 2-process run needs a private network namespace: " + refusal)
    data = tmp_path / "data"
    write_folder(data)
    out = tmp_path / "m.pt"
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", XDG_CACHE_HOME=str(tmp_path / "cache"),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    train = [str(data), "--out", str(out), "--device", "cpu", *TINY]
    command = ["unshare", "-n", str(NETNS), sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", str(PROBE), str(tmp_path),
               "--", *train, "--epochs", "2", "--", *train, "--epochs", "3", "--resume"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    err = done.stderr

    # one model, one CSV row per epoch, one summary: rank 0's
    assert type(torch.jit.load(str(out))).__name__ == "RecursiveScriptModule"
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]  # two epochs, then one more on --resume
    summary = json.loads((tmp_path / "m.run" / "summary.json").read_text())
    assert summary["world_size"] == 2
    per_rank = summary["train_events_per_rank"]
    assert len(per_rank) == 2 and sum(per_rank) == summary["train_events"]
    assert all(0.3 < share / summary["train_events"] < 0.7 for share in per_rank)

    # only rank 0 speaks; the first line says how many processes train
    ours = [line for line in err.splitlines() if not re.match(r"\[?[WIE]\d{4} ", line)]  # not torch's log lines
    assert ours[0].startswith("2 processes train")
    assert err.count("epoch 1 ") == 1 and err.count("resumed from") == 1

    # the bad files are skipped, each named with its reason; the second run reads the cache
    skipped = dict(line.split("\t") for line in (tmp_path / "m.run" / "skipped-files.tsv").read_text().splitlines())
    assert set(map(lambda p: Path(p).name, skipped)) == {"corrupt.mid", "empty.mid", "not-midi.mid"}
    assert "empty" in skipped[str(data / "empty.mid")]
    assert "not a valid MIDI file" in skipped[str(data / "not-midi.mid")]
    assert "12 files read, 3 skipped (14 parsed, 0 from the cache)" in err
    assert "12 files read, 3 skipped (0 parsed, 14 from the cache)" in err

    # both ranks hold the same parameters after training
    first, second = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    # each epoch the two shards are disjoint and cover the training works
    shards = [json.loads((tmp_path / f"rank{r}-shards.json").read_text()) for r in (0, 1)]
    assert set(shards[0]) == set(shards[1]) == {"1", "2", "3"}
    train_works, _ = split_works(load_midi_files([data])[0])
    for epoch in shards[0]:
        a, b = set(shards[0][epoch]), set(shards[1][epoch])
        assert a and b and not a & b
        assert a | b == {work.name for work in train_works}
    assert shards[0]["1"] != shards[0]["2"]  # drawn again every epoch

