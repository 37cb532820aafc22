"""Training in several processes under torchrun: the process group, each rank's shard, reductions.

`torchrun --nproc-per-node N -m improv train ...` starts N processes and tells each its rank
through the environment (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR/PORT). `setup` joins them into
one process group (gloo on CPU, nccl on CUDA, one GPU per process), and the network is wrapped in
PyTorch's DistributedDataParallel, which averages gradients across processes after every backward.
Each epoch every rank draws its windows from its own shard of the training works, redrawn every
epoch; validation is split the same way and its sums added across ranks, so every rank takes the
same decisions (learning rate, best epoch, early stop) and only rank 0 writes files.

Without torchrun (no WORLD_SIZE, or 1) `setup` returns a single-process context whose methods do
nothing, and training runs exactly as before.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import numpy as np
import torch

from improv.data.dataset import EventArrays, WindowSampler
from improv.errors import ImprovError
from improv.music.encoding import Bins

T = TypeVar("T")

# Rank 0 may parse a large folder while the others wait at a barrier: give it time.
TIMEOUT = timedelta(minutes=int(os.environ.get("IMPROV_DIST_TIMEOUT_MIN", "120")))


@dataclass(frozen=True)
class Distributed:
    """Where this process stands among the training processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    local_rank: int = 0  # rank among the processes of this machine
    world_size: int = 1
    backend: str = ""  # "gloo" or "nccl"; "" when training in one process
    device: str = ""  # the device this rank trains on, when several; "" = choose as usual

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints and writes files."""
        return self.rank == 0

    def describe(self) -> str:
        return (f"{self.world_size} processes train (torchrun world size {self.world_size}, {self.backend} on "
                f"{self.device.split(':')[0]}; --batch is per process, so each step sees {self.world_size}x it)")

    def wrap(self, net: torch.nn.Module) -> torch.nn.Module:
        """The module to train: DistributedDataParallel around `net` when several processes train."""
        if not self.active:
            return net
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.backend == "nccl" else None
        return DistributedDataParallel(net, device_ids=ids, output_device=ids[0] if ids else None)

    def sum(self, values: dict[str, float]) -> dict[str, float]:
        """`values` added over every rank (the same dict on every rank afterwards)."""
        if not self.active:
            return values
        keys = sorted(values)
        tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self._comm_device())
        torch.distributed.all_reduce(tensor)
        return dict(zip(keys, tensor.tolist()))

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one: a shared decision to stop, e.g. on the time budget."""
        if not self.active:
            return flag
        tensor = torch.tensor([int(flag)], device=self._comm_device())
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return bool(tensor.item())

    def part(self, items: Sequence[T]) -> list[T]:
        """Every world_size-th item from this rank's: a fixed split for evaluation."""
        return list(items[self.rank :: self.world_size])

    def shard(self, items: Sequence[T], sizes: Sequence[int], seed: int, epoch: int) -> list[T]:
        """This rank's share of `items` for `epoch` (see `assign_shards`)."""
        owners = assign_shards(sizes, self.world_size, seed, epoch)
        return [item for item, owner in zip(items, owners) if owner == self.rank]

    def seed(self, seed: int, epoch: int) -> int:
        """A seed of its own for this rank and epoch: other windows and dropout masks on every rank,
        drawn again the same way on resume."""
        return int(np.random.SeedSequence([seed, self.rank, epoch]).generate_state(1)[0])

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    @contextmanager
    def local_main_first(self) -> Iterator[bool]:
        """The first process of each machine runs the block first (e.g. parsing and caching a folder),
        the others after it (reading the cache). Yields whether this process goes first."""
        first = self.local_rank == 0
        if not first:
            self.barrier()
        yield first
        if first:
            self.barrier()

    def finish(self) -> None:
        """Leave the process group once every rank is done."""
        if self.active and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()

    def _comm_device(self) -> torch.device:
        return torch.device(self.device) if self.backend == "nccl" else torch.device("cpu")


def assign_shards(sizes: Sequence[int], world_size: int, seed: int, epoch: int) -> np.ndarray:
    """The rank that trains on each item in `epoch`: disjoint shards covering every item.

    As DistributedSampler does, the items are shuffled by (seed, epoch), so every rank computes the
    same split without talking and a new one each epoch; then each goes to the rank with the fewest
    events so far, which keeps the ranks' shares within one work of each other.
    """
    order = np.random.default_rng([seed, epoch]).permutation(len(sizes))
    owners = np.zeros(len(sizes), dtype=np.int64)
    loads = [(0, rank) for rank in range(world_size)]
    for index in order:
        load, rank = heapq.heappop(loads)
        owners[index] = rank
        heapq.heappush(loads, (load + int(sizes[index]), rank))
    return owners


def shard_events(sizes: Sequence[int], world_size: int, seed: int, epoch: int) -> list[int]:
    """Events in each rank's shard in `epoch`."""
    owners = assign_shards(sizes, world_size, seed, epoch)
    return [int(v) for v in np.bincount(owners, weights=np.asarray(sizes, dtype=np.float64), minlength=world_size)]


def setup(device: str = "auto") -> Distributed:
    """This process's place among the training processes; joins the process group under torchrun.

    Safe to call more than once: a second call reads the group already joined.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "mps":
        raise ImprovError("--device mps trains in one process only; run without torchrun, or pass --device cpu")
    if cuda and not torch.cuda.is_available():
        raise ImprovError("--device cuda: torch sees no CUDA device; pass --device cpu to train on the CPU")
    if cuda and local_rank >= torch.cuda.device_count():
        raise ImprovError(f"local rank {local_rank} has no GPU of its own ({torch.cuda.device_count()} seen); "
                          "start at most that many processes per machine (--nproc-per-node)")
    backend = "nccl" if cuda else "gloo"
    name = f"cuda:{local_rank}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(local_rank)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend, timeout=TIMEOUT)
    return Distributed(rank, local_rank, world_size, backend, name)


def epoch_sampler(ddp: Distributed, sequences: Sequence[EventArrays], bins: Bins, length: int, seed: int,
                  epoch: int) -> WindowSampler:
    """This rank's window sampler for `epoch`: its shard of the works and a seed of its own (dropout too)."""
    if len(sequences) < ddp.world_size:
        raise ImprovError(f"{len(sequences)} training works cannot be shared among {ddp.world_size} processes; "
                          "give more files or start fewer processes (--nproc-per-node)")
    shard = ddp.shard(sequences, [len(s) for s in sequences], seed, epoch)
    torch.manual_seed(ddp.seed(seed, epoch))
    return WindowSampler(shard, bins, length, ddp.seed(seed, epoch))
