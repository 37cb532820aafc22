"""Training: windows of augmented events, per-head validation, early stopping, export.

Offline only. Progress goes to the terminal (rich), curves to a CSV and a PNG
beside the model, and checkpoints to a run directory so training can resume.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from improv.data.dataset import EventArrays, WindowSampler, encode_sequence, pad_stack, split_batch
from improv.model.network import HEADS, ImprovNet, ModelConfig, export
from improv.training.distributed import epoch_sampler, setup as setup_distributed, shard_events


@dataclass
class TrainSettings:
    minutes: float = 55.0
    epochs: int = 200
    batch: int = 64
    length: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.01
    patience: int = 6
    lr_patience: int = 1  # epochs without a better validation pitch NLL before the learning rate halves
    seed: int = 1234
    device: str = "auto"
    threads: int | None = None
    label_smoothing: float = 0.0
    keep_epochs: bool = False  # also save every epoch's weights in the run directory
    calibrate: bool = False  # fit one temperature per head on the validation sets before export (calibrate.py)


@dataclass
class EpochRecord:
    epoch: int
    minutes: float
    lr: float
    train: dict[str, float]
    valid: dict[str, float]


@dataclass
class TrainResult:
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    best_valid: dict[str, float] = field(default_factory=dict)
    stopped_because: str = ""
    minutes: float = 0.0
    best_guard: float | None = None  # summed NLL per event on the guard set at the best epoch


def pick_device(name: str) -> torch.device:
    """`auto` takes an accelerator when torch sees one; the exported model always runs on CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA device")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps: torch sees no MPS device")
    return torch.device(name)


def head_losses(
    logits: dict[str, torch.Tensor], targets: tuple[torch.Tensor, ...], valid: torch.Tensor, velocity_valid: torch.Tensor,
    label_smoothing: float = 0.0,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Summed NLL (nats) and count per head; velocity only where the data has dynamics.

    `label_smoothing` (training only) spreads that share of each target over every token, so
    the heads stay less sure of themselves on music unlike the corpus.
    """
    pitch, step, duration, velocity = targets
    wanted = {"pitch": pitch, "step": step, "duration": duration, "velocity": velocity}
    out = {}
    for head in HEADS:
        mask = velocity_valid if head == "velocity" else valid
        nll = F.cross_entropy(logits[head].reshape(-1, logits[head].shape[-1]), wanted[head].reshape(-1), reduction="none",
                              label_smoothing=label_smoothing)
        m = mask.reshape(-1).to(nll.dtype)
        out[head] = ((nll * m).sum(), m.sum())
    return out


@torch.no_grad()
def evaluate_nll(net: ImprovNet, sequences: Sequence[EventArrays], device: torch.device, batch: int = 8,
                 reduce: Callable[[dict[str, float]], dict[str, float]] | None = None) -> dict[str, float]:
    """Mean NLL per event (nats) per head over whole works, no augmentation; `reduce` adds up the
    sums and counts of every training process, each scoring its part of the works."""
    net.eval()
    bins = net.config.binning
    encoded = sorted((encode_sequence(s, bins) for s in sequences if len(s)), key=len)
    sums = {h: 0.0 for h in HEADS}
    counts = {h: 0.0 for h in HEADS}
    for i in range(0, len(encoded), batch):
        tokens = pad_stack(encoded[i : i + batch]).to(device)
        inputs, targets, valid, velocity_valid = split_batch(tokens)
        losses = head_losses(net(inputs, targets), targets, valid, velocity_valid)
        for head, (total, count) in losses.items():
            sums[head] += float(total.detach())
            counts[head] += float(count.detach())
    if reduce is not None:
        sums, counts = reduce(sums), reduce(counts)
    return {h: sums[h] / counts[h] if counts[h] else float("nan") for h in HEADS}


def _write_csv(path: Path, history: Sequence[EpochRecord]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "minutes", "lr"] + [f"train_{h}" for h in HEADS] + [f"valid_{h}" for h in HEADS])
        for r in history:
            writer.writerow(
                [r.epoch, f"{r.minutes:.2f}", f"{r.lr:.2e}"]
                + [f"{r.train[h]:.4f}" for h in HEADS]
                + [f"{r.valid[h]:.4f}" for h in HEADS]
            )


def plot_curves(history: Sequence[EpochRecord], path: Path) -> bool:
    """A PNG of train/valid NLL per head; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(HEADS), figsize=(4 * len(HEADS), 3.2))
    epochs = [r.epoch for r in history]
    for ax, head in zip(axes, HEADS):
        ax.plot(epochs, [r.train[head] for r in history], label="train")
        ax.plot(epochs, [r.valid[head] for r in history], label="valid")
        ax.set_title(f"{head} NLL (nats/event)")
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def train(
    train_seqs: Sequence[EventArrays],
    valid_seqs: Sequence[EventArrays],
    out_path: Path,
    config: ModelConfig | None = None,
    settings: TrainSettings | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    summary: dict | None = None,
    on_progress: Callable[[str], None] | None = None,
    init_state: dict | None = None,
    guard_seqs: Sequence[EventArrays] | None = None,
    sample_weights: Sequence[float] | None = None,
) -> TrainResult:
    """Train, keep the epoch with the best total validation NLL, export it to `out_path`.

    With `init_state` training starts from those weights (fine-tuning). With `guard_seqs`
    (the default corpus's held-out works, when fine-tuning on a player's sessions) the epoch
    kept is the best on the mean of both validation sets, so gaining the player's style
    cannot cost everything else the model knew. `sample_weights` (one per training sequence)
    scale how often windows come from each, on top of its length.
    """
    config = config or ModelConfig()
    settings = settings or TrainSettings()
    ddp = setup_distributed(settings.device)  # several processes under torchrun; only rank 0 speaks and writes
    say = on_progress if on_progress and ddp.is_main else (lambda text: None)
    save = torch.save if ddp.is_main else (lambda *args, **kwargs: None)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    random.seed(settings.seed)
    np.random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    device = torch.device(ddp.device) if ddp.active else pick_device(settings.device)
    run_dir = run_dir or out_path.with_suffix(".run")
    run_dir.mkdir(parents=True, exist_ok=True)
    net = ImprovNet(config).to(device)
    if init_state is not None:
        net.load_state_dict(init_state)
    model = ddp.wrap(net)  # DistributedDataParallel averages the gradients across processes
    optimizer = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=settings.lr_patience)
    # One process: windows by length times `sample_weights`. Under torchrun each process draws from a
    # shard of the works by length alone (distributed.epoch_sampler): the weights are not applied there.
    sampler = WindowSampler(train_seqs, config.binning, settings.length, settings.seed, weights=sample_weights)
    works = sampler.sequences  # every process's, when several each draw from a shard of them
    events = sum(len(s) for s in train_seqs)
    steps_per_epoch = max(1, math.ceil(events / (settings.batch * settings.length * ddp.world_size)))
    result = TrainResult()
    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    best_total = math.inf
    best_per_head = {h: math.inf for h in HEADS}
    stale = {h: 0 for h in HEADS}
    start_epoch = 1
    elapsed_before = 0.0
    checkpoint = run_dir / "last.ckpt"
    if resume and checkpoint.exists():
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        net.load_state_dict(saved["net"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        sampler.rng = saved["sampler_rng"]
        torch.set_rng_state(saved["torch_rng"])
        best_state = saved["best_state"]
        best_total, best_per_head, stale = saved["best_total"], saved["best_per_head"], saved["stale"]
        result = saved["result"]
        result.stopped_because = ""  # a run that ended by its budget or epochs goes on under the new ones
        start_epoch = saved["epoch"] + 1
        elapsed_before = result.minutes * 60
        say(f"resumed from {checkpoint} at epoch {start_epoch}")
    started = time.monotonic() - elapsed_before
    budget_s = settings.minutes * 60
    progress = _progress_bar(settings.epochs, steps_per_epoch, show=ddp.is_main)
    with progress:
        task = progress.add_task("training", total=min(settings.epochs, 10**6) * steps_per_epoch,
                                 completed=(start_epoch - 1) * steps_per_epoch)
        for epoch in range(start_epoch, settings.epochs + 1):
            net.train()
            if ddp.active:
                sampler = epoch_sampler(ddp, works, config.binning, settings.length, settings.seed, epoch)
            sums = {h: 0.0 for h in HEADS}
            counts = {h: 0.0 for h in HEADS}
            for _ in range(steps_per_epoch):
                tokens = sampler.batch(settings.batch).to(device)
                inputs, targets, valid, velocity_valid = split_batch(tokens)
                losses = head_losses(model(inputs, targets), targets, valid, velocity_valid, settings.label_smoothing)
                loss = sum(total / count.clamp(min=1) for total, count in losses.values())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                optimizer.step()
                for head, (total, count) in losses.items():
                    sums[head] += float(total.detach())
                    counts[head] += float(count.detach())
                progress.advance(task)
                if ddp.any(time.monotonic() - started > budget_s):
                    break
            sums, counts = ddp.sum(sums), ddp.sum(counts)
            train_nll = {h: sums[h] / max(counts[h], 1) for h in HEADS}
            valid_nll = evaluate_nll(net, ddp.part(valid_seqs), device, reduce=ddp.sum)
            minutes = (time.monotonic() - started) / 60
            total = _total(valid_nll)
            guard_total = None
            if guard_seqs:
                guard_total = _total(evaluate_nll(net, ddp.part(guard_seqs), device, reduce=ddp.sum))
                total = (total + guard_total) / 2
            scheduler.step(valid_nll["pitch"])  # pitch learns longest; the rhythm heads plateau early
            record = EpochRecord(epoch, minutes, optimizer.param_groups[0]["lr"], train_nll, valid_nll)
            result.history.append(record)
            for head in HEADS:
                if valid_nll[head] < best_per_head[head] - 1e-4:
                    best_per_head[head], stale[head] = valid_nll[head], 0
                else:
                    stale[head] += 1
            if total < best_total:
                best_total = total
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                result.best_epoch, result.best_valid = epoch, valid_nll
                result.best_guard = guard_total
            say(
                f"epoch {epoch} {minutes:.1f} min  valid "
                + " ".join(f"{h} {valid_nll[h]:.3f}" for h in HEADS)
                + "  train " + " ".join(f"{h} {train_nll[h]:.3f}" for h in HEADS)
                + (f"  guard total {guard_total:.3f}" if guard_total is not None else "")
            )
            result.minutes = minutes
            if ddp.is_main:
                _write_csv(out_path.with_suffix(".csv"), result.history)
            if all(stale[h] >= settings.patience for h in HEADS):
                result.stopped_because = f"no head improved for {settings.patience} epochs"
            elif ddp.any(time.monotonic() - started > budget_s):
                result.stopped_because = f"time budget of {settings.minutes:g} minutes reached"
            elif epoch == settings.epochs:
                result.stopped_because = f"{settings.epochs} epochs done"
            save(
                {
                    "net": net.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "sampler_rng": sampler.rng, "torch_rng": torch.get_rng_state(), "best_state": best_state,
                    "best_total": best_total, "best_per_head": best_per_head, "stale": stale,
                    "result": result, "epoch": epoch, "config": asdict(config),
                },
                checkpoint,
            )
            if settings.keep_epochs:
                save(net.state_dict(), run_dir / f"epoch-{epoch:03d}.pt")
            if result.stopped_because:
                break
    net.load_state_dict(best_state)
    info = dict(summary or {})
    info.update(
        {
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.history),
            "minutes": round(result.minutes, 1),
            "valid_nll": {h: round(v, 4) for h, v in result.best_valid.items()},
            "stopped_because": result.stopped_because,
            "settings": asdict(settings),
            "train_events": events,
            "world_size": ddp.world_size,
            # each process's share in the first epoch (shards are drawn again every epoch)
            "train_events_per_rank": shard_events([len(s) for s in works], ddp.world_size, settings.seed, 1)
            if ddp.active else [events],
        }
    )
    if result.best_guard is not None:
        info["guard_nll_total"] = round(result.best_guard, 4)
    if not ddp.is_main:
        return result
    if settings.calibrate:
        from improv.training.calibrate import apply_temperatures, fit_temperatures

        temperatures = fit_temperatures(net, [valid_seqs] + ([guard_seqs] if guard_seqs else []))
        net = copy.deepcopy(net)  # the trained network stays as trained (like every rank's); the file gets the soft heads
        apply_temperatures(net, temperatures)
        info["head_temperatures"] = temperatures
        say("head temperatures fitted on the validation sets: " + ", ".join(f"{h} {t:g}" for h, t in temperatures.items()))
    export(net, out_path, info)
    plot_curves(result.history, out_path.with_suffix(".png"))
    (run_dir / "summary.json").write_text(json.dumps(info, indent=2))
    return result


def _total(nll: dict[str, float]) -> float:
    """Summed NLL per event over the heads (a head with nothing to score, e.g. velocity, counts 0)."""
    return sum(v for v in nll.values() if not math.isnan(v))


def _progress_bar(epochs: int, steps_per_epoch: int, show: bool = True):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False,
                    disable=not show)
