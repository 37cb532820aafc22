"""The study project's kind of model, kept only to compare against.

The study project predicted pitch with a softmax but step and duration as
plain numbers in seconds, trained with mean squared error (plus a penalty on
negative predictions), and had no velocity. `StudyNet` is that design on the
same trunk as improv's model (embedding size, LSTM hidden size and layers,
head width, dropout), trained with the same windows and augmentation for the
same time, so its pitch NLL is directly comparable; its step and duration
have no likelihood at all, which is the point of the comparison.

Offline only. Train one with `python -m improv.training.study --model FILE`; it is
written to the user cache directory, where `improv evaluate` finds it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from improv.data.dataset import EventArrays, WindowSampler, encode_sequence
from improv.music.encoding import N_PITCH, Bins
from improv.errors import ImprovError, ModelFileError

FORMAT = "improv-study"
FORMAT_VERSION = 1
POSITIVE_PRESSURE = 10.0  # weight of the study project's penalty on negative times


@dataclass
class StudyConfig:
    hidden: int = 256
    layers: int = 2
    embed: int = 128
    head_hidden: int = 256
    dropout: float = 0.3
    pitch_weight: float = 1.0  # loss weight of pitch cross-entropy against the two MSE terms
    bins: dict = field(default_factory=lambda: Bins().to_dict())

    @classmethod
    def like(cls, model_config: dict, pitch_weight: float = 1.0) -> StudyConfig:
        """The study twin of an improv model config: same trunk, same bins."""
        keys = ("hidden", "layers", "embed", "head_hidden", "dropout", "bins")
        return cls(**{k: model_config[k] for k in keys if k in model_config}, pitch_weight=pitch_weight)

    def key(self) -> str:
        """A short name for the cache: the trunk in words plus a hash of everything."""
        digest = hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]
        return f"h{self.hidden}-l{self.layers}-{digest}"


def _head(hidden: int, head_hidden: int, n_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(hidden, head_hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(head_hidden, n_out))


class StudyNet(nn.Module):
    """Pitch embedding + (step, duration) in seconds -> LSTM -> pitch logits, step s, duration s."""

    def __init__(self, config: StudyConfig) -> None:
        super().__init__()
        self.config = config
        self.bins = Bins.from_dict(config.bins)
        e, h, hh, d = config.embed, config.hidden, config.head_hidden, config.dropout
        self.pitch_in = nn.Embedding(N_PITCH + 1, e)
        self.times_in = nn.Linear(2, e)
        self.input_dropout = nn.Dropout(d / 2)
        self.lstm = nn.LSTM(e, h, config.layers, batch_first=True, dropout=d)
        self.out_dropout = nn.Dropout(d)
        self.pitch_head = _head(h, hh, N_PITCH, d)
        self.step_head = _head(h, hh, 1, d)
        self.duration_head = _head(h, hh, 1, d)

    def forward(self, pitch: Tensor, step_s: Tensor, duration_s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.pitch_in(pitch) + self.times_in(torch.stack([step_s, duration_s], dim=-1))
        out, _ = self.lstm(self.input_dropout(x))
        out = self.out_dropout(out)
        return self.pitch_head(out), self.step_head(out).squeeze(-1), self.duration_head(out).squeeze(-1)


def mse_with_positive_pressure(predicted: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """The study project's time loss: squared error plus a penalty on negative predictions."""
    m = mask.to(predicted.dtype)
    n = m.sum().clamp(min=1)
    squared = ((predicted - target) ** 2 * m).sum() / n
    pressure = (F.relu(-predicted) * m).sum() / n
    return squared + POSITIVE_PRESSURE * pressure


def _as_inputs(tokens: Tensor, bins: Bins) -> tuple[tuple[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor], Tensor]:
    """(B, T+1, 5) improv tokens -> study inputs, targets (bin centres in seconds) and the valid mask."""
    step_s = torch.tensor(bins.step_s, dtype=torch.float32)
    duration_s = torch.tensor(bins.duration_s, dtype=torch.float32)
    safe = tokens.clamp(min=0)
    pitch, step, duration = safe[..., 0], step_s[safe[..., 1]], duration_s[safe[..., 2]]
    inputs = (pitch[:, :-1], step[:, :-1], duration[:, :-1])
    targets = (pitch[:, 1:], step[:, 1:], duration[:, 1:])
    return inputs, targets, tokens[:, 1:, 0] >= 0


def _losses(net: StudyNet, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Summed pitch NLL, event count, step MSE loss, duration MSE loss."""
    inputs, (pitch, step, duration), valid = _as_inputs(tokens, net.bins)
    pitch_logits, step_pred, duration_pred = net(*inputs)
    nll = F.cross_entropy(pitch_logits.reshape(-1, N_PITCH), pitch.reshape(-1), reduction="none")
    m = valid.reshape(-1).to(nll.dtype)
    return (
        (nll * m).sum(),
        m.sum(),
        mse_with_positive_pressure(step_pred, step, valid),
        mse_with_positive_pressure(duration_pred, duration, valid),
    )


def _pad(arrays: Sequence[np.ndarray]) -> Tensor:
    out = np.zeros((len(arrays), max(len(a) for a in arrays), 5), dtype=np.int64)
    out[:, :, 0] = -1
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return torch.from_numpy(out)


@torch.no_grad()
def evaluate_study(net: StudyNet, sequences: Sequence[EventArrays], batch: int = 8) -> dict[str, float]:
    """Pitch NLL (nats/event) over whole works, plus the step and duration MSE (s^2), no augmentation."""
    net.eval()
    encoded = sorted((encode_sequence(s, net.bins) for s in sequences if len(s)), key=len)
    nll_sum = events = step_sum = duration_sum = 0.0
    for i in range(0, len(encoded), batch):
        tokens = _pad(encoded[i : i + batch])
        nll, count, step_loss, duration_loss = _losses(net, tokens)
        nll_sum += float(nll)
        events += float(count)
        step_sum += float(step_loss) * float(count)
        duration_sum += float(duration_loss) * float(count)
    if not events:
        return {"pitch": math.nan, "step_mse": math.nan, "duration_mse": math.nan}
    return {"pitch": nll_sum / events, "step_mse": step_sum / events, "duration_mse": duration_sum / events}


def default_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("improv")) / "study"


def study_model_path(config: StudyConfig, cache_dir: Path | None = None) -> Path:
    """Where the study model of this trunk lives in the cache."""
    return (cache_dir or default_dir()) / f"study-{config.key()}.pt"


def save(net: StudyNet, path: Path, summary: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save(
        {"format": FORMAT, "format_version": FORMAT_VERSION, "config": asdict(net.config),
         "state": net.state_dict(), "summary": summary},
        temporary,
    )
    temporary.replace(path)


def load(path: Path) -> tuple[StudyNet, dict]:
    """A saved study model and its training summary; anything else is a one-line ModelFileError."""
    if not path.is_file():
        raise ModelFileError(f"{path}: no such study model; train one with 'python -m improv.training.study'")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        reason = " ".join(str(error).split())[:100]
        raise ModelFileError(f"{path}: not a study model ({reason})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT or saved.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: not a study model of format {FORMAT_VERSION}; retrain with 'python -m improv.training.study'")
    net = StudyNet(StudyConfig(**saved["config"]))
    net.load_state_dict(saved["state"])
    return net.eval(), saved.get("summary", {})


def train_study_model(
    train_seqs: Sequence[EventArrays],
    valid_seqs: Sequence[EventArrays],
    minutes: float,
    config: StudyConfig | None = None,
    out_path: Path | None = None,
    batch: int = 64,
    length: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 0.01,
    epochs: int = 200,
    seed: int = 1234,
    on_progress: Callable[[str], None] | None = None,
) -> Path:
    """Train for `minutes` (and at most `epochs`) like improv's own loop; keep the epoch with
    the best validation pitch NLL; save to `out_path` (default: the cache) and return it."""
    config = config or StudyConfig()
    say = on_progress or (lambda text: None)
    torch.manual_seed(seed)
    net = StudyNet(config)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
    sampler = WindowSampler(train_seqs, net.bins, length, seed)
    events = sum(len(s) for s in train_seqs)
    steps_per_epoch = max(1, math.ceil(events / (batch * length)))
    best = {"pitch": math.inf}
    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    best_epoch = 0
    started = time.monotonic()
    budget_s = minutes * 60
    epoch = 0
    for epoch in range(1, epochs + 1):
        net.train()
        for _ in range(steps_per_epoch):
            nll, count, step_loss, duration_loss = _losses(net, sampler.batch(batch))
            loss = config.pitch_weight * nll / count.clamp(min=1) + step_loss + duration_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            if time.monotonic() - started > budget_s:
                break
        valid = evaluate_study(net, valid_seqs)
        scheduler.step(valid["pitch"])
        if valid["pitch"] < best["pitch"]:
            best, best_epoch = valid, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        say(f"study epoch {epoch} {(time.monotonic() - started) / 60:.1f} min  valid pitch {valid['pitch']:.3f} nats/event, "
            f"step MSE {valid['step_mse']:.4f}, duration MSE {valid['duration_mse']:.4f}")
        if time.monotonic() - started > budget_s:
            break
    net.load_state_dict(best_state)
    summary = {
        "best_epoch": best_epoch,
        "epochs_run": epoch,
        "minutes": round((time.monotonic() - started) / 60, 2),
        "budget_minutes": minutes,
        "valid": {k: round(v, 4) for k, v in best.items()},
        "train_events": events,
        "settings": {"batch": batch, "length": length, "lr": lr, "weight_decay": weight_decay, "seed": seed},
    }
    path = out_path or study_model_path(config)
    save(net, path, summary)
    return path


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m improv.training.study",
        description="Train the study-style comparison model (MSE step/duration) on the default corpus, into the cache.",
    )
    parser.add_argument("--model", type=Path, default=None,
                        help="improv model whose trunk size and training time to match (default: the shipped model)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="training budget (default: the model's own training time)")
    parser.add_argument("--pitch-weight", type=float, default=1.0, help="pitch loss weight against the MSE terms")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: the cache, where evaluate looks)")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        from improv.data.sets import default_corpus_split
        from improv.model.shipped import resolve_model

        model = resolve_model(args.model)
        minutes = args.minutes if args.minutes is not None else float(model.summary.get("minutes") or 0)
        if minutes <= 0:
            raise ImprovError(f"{model.path} does not record its training time; pass --minutes")
        if args.threads:
            torch.set_num_threads(args.threads)
        config = StudyConfig.like(model.config, args.pitch_weight)
        train_seqs, valid_seqs = default_corpus_split(say)
        say(f"training the study model (hidden {config.hidden}, layers {config.layers}) for {minutes:g} minutes")
        path = train_study_model(train_seqs, valid_seqs, minutes, config, args.out, on_progress=say)
    except ImprovError as error:
        print(f"improv.training.study: {error}", file=sys.stderr)
        return 2
    _, summary = load(path)
    say(f"wrote {path}: valid pitch {summary['valid']['pitch']:.3f} nats/event (epoch {summary['best_epoch']})")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
