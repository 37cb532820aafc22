"""Run `improv train` in every process torchrun starts, and leave behind what each rank held.

Usage: torchrun --standalone --nproc-per-node 2 tests/support/ddp_probe.py OUT_DIR -- TRAIN ARGS...
       (each `--` starts another `improv train` run, e.g. a --resume after the first)

Each rank writes OUT_DIR/rank<R>.pt (its network's parameters after the last run) and
OUT_DIR/rank<R>-shards.json (the works of its shard, per epoch): tests/test_distributed.py checks
that the ranks agree and that their shards are disjoint and cover the data.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from improv.cli import main
from improv.training.distributed import Distributed


def run() -> int:
    out = Path(sys.argv[1])
    runs: list[list[str]] = []
    for arg in sys.argv[2:]:
        if arg == "--":
            runs.append([])
        else:
            runs[-1].append(arg)
    held: dict[str, torch.nn.Module] = {}
    shards: dict[int, list[str]] = {}
    wrap, shard = Distributed.wrap, Distributed.shard

    def spy_wrap(self, net):
        held["net"] = net
        return wrap(self, net)

    def spy_shard(self, items, sizes, seed, epoch):
        mine = shard(self, items, sizes, seed, epoch)
        shards[epoch] = [item.name for item in mine]
        return mine

    Distributed.wrap, Distributed.shard = spy_wrap, spy_shard
    Distributed.finish = Distributed.barrier  # one process group for every run; left below
    rank = int(os.environ["RANK"])
    for argv in runs:
        code = main(["train", *argv])
        if code:
            return code
    torch.save({k: v.detach().cpu() for k, v in held["net"].state_dict().items()}, out / f"rank{rank}.pt")
    (out / f"rank{rank}-shards.json").write_text(json.dumps(shards))
    torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(run())
