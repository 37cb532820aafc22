"""Per-event cost of the live model path vs a scripted nn.LSTM called with sequence length 1.

Usage: python benchmarks/model_step.py [--model FILE] [--events N] [--json]

Both run on one thread in the same process. "improv" is exactly what the live
engine does per event: feed the previous event to the single-step cell and
sample the next one (four chained heads, temperature, masks). "nn.LSTM" is
only the recurrent step of a scripted nn.LSTM of the same size, no heads, no
sampling: the cost a naive export would pay before doing anything useful.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

warnings.filterwarnings("ignore", category=DeprecationWarning)

from improv.model.rolling_seed import Constraints, Improviser  # noqa: E402
from improv.model.network import load  # noqa: E402
from improv.model.shipped import default_model_path  # noqa: E402
from improv.model.style import StyleMemory  # noqa: E402


class _LstmStep(torch.nn.Module):
    """nn.LSTM behind a plain forward, since TorchScript cannot script its overloaded one."""

    def __init__(self, embed: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(embed, hidden, layers)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out, (h2, c2) = self.lstm(x, (h, c))
        return out, h2, c2


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def time_calls(fn, n: int, warmup: int = 200) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = load(args.model or default_model_path())
    improviser = Improviser(model)
    rng = np.random.default_rng(0)
    constraints = Constraints(21, 108, None, 6)

    def improv_event() -> None:
        improviser.sample(args.temperature, rng, constraints)

    config = model.config
    lstm = torch.jit.script(_LstmStep(config["embed"], config["hidden"], config["layers"]).eval())
    x = torch.zeros(1, 1, config["embed"])
    h = torch.zeros(config["layers"], 1, config["hidden"])
    c = torch.zeros(config["layers"], 1, config["hidden"])

    def lstm_event() -> None:
        nonlocal h, c
        with torch.inference_mode():
            _, h, c = lstm(x, h, c)

    style = StyleMemory(model.bins.n_step)
    walk = np.random.default_rng(1)
    phrase = [(int(60 + walk.integers(-7, 8)), int(walk.integers(0, 20))) for _ in range(24)]
    stream = iter([phrase[i % 24] if walk.random() < 0.7 else (int(walk.integers(40, 90)), int(walk.integers(0, 32)))
                   for i in range(args.events + 1000)])

    def style_update() -> None:
        style.learn(*next(stream))

    blended = Improviser(model)

    def follow_event() -> None:
        blended.sample(args.temperature, rng, constraints, style=style, follow=0.5)

    # Interleave rounds so that machine noise hits both alike.
    ours: list[float] = []
    base: list[float] = []
    rounds = 10
    for _ in range(rounds):
        ours += time_calls(improv_event, args.events // rounds, warmup=50)
        base += time_calls(lstm_event, args.events // rounds, warmup=50)
    memory = time_calls(style_update, args.events, warmup=500)
    following = time_calls(follow_event, max(args.events // 5, 100), warmup=50)
    rows = []
    for name, values in (("improv feed+sample", ours), ("scripted nn.LSTM len 1", base),
                         ("style memory update", memory), ("improv, follow 0.5", following)):
        rows.append({"case": name, "n": len(values), "p50_ms": statistics.median(values) * 1e3,
                     "p99_ms": percentile(values, 99) * 1e3})
    result = {
        "model": str(model.path),
        "hidden": config["hidden"],
        "layers": config["layers"],
        "rows": rows,
        "ratio_p50": rows[0]["p50_ms"] / rows[1]["p50_ms"],
        "ratio_p99": rows[0]["p99_ms"] / rows[1]["p99_ms"],
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"model {result['model']} ({config['layers']}x{config['hidden']}), one thread")
    print(f"{'case':<26}{'n':>7}{'p50 ms':>10}{'p99 ms':>10}")
    for row in rows:
        print(f"{row['case']:<26}{row['n']:>7}{row['p50_ms']:>10.3f}{row['p99_ms']:>10.3f}")
    print(f"ratio improv/baseline: p50 {result['ratio_p50']:.2f}, p99 {result['ratio_p99']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
