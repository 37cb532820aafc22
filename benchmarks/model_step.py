"""Per-event cost of the live model path (step + sample), against Notochord's feed + query.

Usage: python benchmarks/model_step.py [--model FILE] [--events N] [--notochord-venv DIR] [--json]

Everything runs on one thread (torch, BLAS; improv's compiled kernels use one anyway). "improv
step+sample" is exactly what the live engine does per event: sample the next event head by head
(step, pitch, duration, velocity: temperature, range, polyphony) and feed it to the LSTMs. "Notochord feed+query" is the same
work for Notochord 0.8.0 (`notochord.model.Notochord()` at its published sizes, untrained
weights: the cost does not depend on them), run in a subprocess of its own virtual environment
(it pins an older torch) and timed in rounds interleaved with improv's, so machine noise hits
both alike. "scripted nn.LSTM len 1" is only the recurrent step of a scripted nn.LSTM of the
model's size, no heads, no sampling: what a naive export pays before doing anything useful.

Wall-clock p50 and p99 per event, and the same of the thread's CPU time (what the event costs
when the machine is shared: time spent waiting for a core is not counted; the load average is
printed, since on a busy machine the wall-clock p99 is the scheduler's, not the model's).

Notochord's environment (see --notochord-venv):
    python3 -m venv /work/notochord-venv
    /work/notochord-venv/bin/pip install torch==2.13.0
    /work/notochord-venv/bin/pip install --no-deps notochord==0.8.0
    /work/notochord-venv/bin/pip install numpy 'pandas<3' tqdm sf2utils appdirs toml-file joblib 'iipyper<0.6' mido
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

DEFAULT_NOTOCHORD_VENV = Path("/work/notochord-venv")
Timing = tuple[float, float]  # (wall s, thread CPU s) of one event


def time_calls(fn: Callable[[], object], n: int, warmup: int = 200) -> list[Timing]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        w, c = time.perf_counter(), time.thread_time()
        fn()
        out.append((time.perf_counter() - w, time.thread_time() - c))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


# -- Notochord, in its own environment ---------------------------------------------------------


def notochord_worker() -> int:
    """Read a number of events per line on stdin, answer with their timings as one JSON line."""
    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    from notochord.model import Notochord

    model = Notochord().eval()
    model.reset()
    event = {"inst": 1, "pitch": 60, "time": 0.0, "vel": 80.0}

    def one_event() -> None:
        nonlocal event
        model.feed(**event)
        p = model.query(include_inst={1})
        event = {"inst": int(p["inst"]), "pitch": int(p["pitch"]), "time": float(p["time"]), "vel": float(p["vel"])}

    print(json.dumps({"ready": sum(p.numel() for p in model.parameters())}), flush=True)
    with torch.inference_mode():
        for line in sys.stdin:
            n, warmup = (int(x) for x in line.split())
            print(json.dumps(time_calls(one_event, n, warmup)), flush=True)
    return 0


class Notochord:
    """The worker above, started with the Notochord environment's Python."""

    def __init__(self, venv: Path) -> None:
        self.process = subprocess.Popen(
            [str(venv / "bin" / "python"), __file__, "--notochord-worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        ready = self.process.stdout.readline()
        if not ready:
            raise RuntimeError(f"Notochord did not start with {venv}/bin/python; see this script's docstring to install it")
        self.parameters = json.loads(ready)["ready"]

    def events(self, n: int, warmup: int) -> list[Timing]:
        self.process.stdin.write(f"{n} {warmup}\n")
        self.process.stdin.flush()
        return [tuple(t) for t in json.loads(self.process.stdout.readline())]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


# -- improv ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model file (default: the shipped model)")
    parser.add_argument("--events", type=int, default=5000, help="improv events to time (default: %(default)s)")
    parser.add_argument("--notochord-events", type=int, default=300, help="Notochord events to time (default: %(default)s)")
    parser.add_argument("--notochord-venv", type=Path, default=DEFAULT_NOTOCHORD_VENV,
                        help="virtual environment with notochord 0.8.0 (default: %(default)s); absent: not compared")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--notochord-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.notochord_worker:
        return notochord_worker()

    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from improv.model.network import load
    from improv.model.rolling_seed import Constraints, Improviser
    from improv.model.shipped import default_model_path
    from improv.model.style import StyleMemory

    torch.set_num_threads(1)
    threadpool_limits(1)
    model = load(args.model or default_model_path())
    improviser = Improviser(model)
    rng = np.random.default_rng(0)
    constraints = Constraints(21, 108, None, 6)

    def improv_event() -> None:
        improviser.sample(args.temperature, rng, constraints)

    config = model.config
    lstm = torch.jit.script(_lstm_step(config["embed"], config["hidden"], config["layers"]).eval())
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

    notochord = None
    if (args.notochord_venv / "bin" / "python").is_file():
        notochord = Notochord(args.notochord_venv)
    # Interleave rounds so that machine noise hits every case alike.
    ours: list[Timing] = []
    base: list[Timing] = []
    theirs: list[Timing] = []
    rounds = 10
    for _ in range(rounds):
        ours += time_calls(improv_event, args.events // rounds, warmup=50)
        base += time_calls(lstm_event, args.events // rounds, warmup=50)
        if notochord is not None:
            theirs += notochord.events(max(args.notochord_events // rounds, 1), warmup=5)
    if notochord is not None:
        notochord.close()
    memory = time_calls(style_update, args.events, warmup=500)
    following = time_calls(follow_event, max(args.events // 5, 100), warmup=50)
    cases = [("improv step+sample", ours), ("scripted nn.LSTM len 1", base),
             ("style memory update", memory), ("improv, follow 0.5", following)]
    if theirs:
        cases.append(("Notochord feed+query", theirs))
    rows = []
    for name, timings in cases:
        wall = [t[0] for t in timings]
        rows.append({"case": name, "n": len(timings), "p50_ms": statistics.median(wall) * 1e3,
                     "p99_ms": percentile(wall, 99) * 1e3, "cpu_p50_ms": statistics.median(t[1] for t in timings) * 1e3,
                     "cpu_p99_ms": percentile([t[1] for t in timings], 99) * 1e3})
    improv_row = rows[0]
    result = {
        "model": str(model.path),
        "hidden": config["hidden"],
        "layers": config["layers"],
        "rows": rows,
        "ratio_p50": improv_row["p50_ms"] / rows[1]["p50_ms"],
        "ratio_p99": improv_row["p99_ms"] / rows[1]["p99_ms"],
        "notochord": None,
        "load_average": os.getloadavg()[0],
    }
    if theirs:
        their_row = rows[-1]
        result["notochord"] = {
            "venv": str(args.notochord_venv), "parameters": notochord.parameters,
            "times_improv_p50": their_row["p50_ms"] / improv_row["p50_ms"],
            "times_improv_cpu": their_row["cpu_p50_ms"] / improv_row["cpu_p50_ms"],
        }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"model {result['model']} ({config['layers']}x{config['hidden']}), one thread; "
          f"load average {result['load_average']:.1f} on {os.cpu_count()} CPUs")
    print(f"{'case':<26}{'n':>7}{'p50 ms':>10}{'p99 ms':>10}{'cpu p50 ms':>12}{'cpu p99 ms':>12}")
    for row in rows:
        print(f"{row['case']:<26}{row['n']:>7}{row['p50_ms']:>10.3f}{row['p99_ms']:>10.3f}"
              f"{row['cpu_p50_ms']:>12.3f}{row['cpu_p99_ms']:>12.3f}")
    print(f"ratio improv/nn.LSTM: p50 {result['ratio_p50']:.2f}, p99 {result['ratio_p99']:.2f}")
    if result["notochord"]:
        n = result["notochord"]
        print(f"Notochord per event / improv per event: {n['times_improv_p50']:.1f}x (p50 wall), "
              f"{n['times_improv_cpu']:.1f}x (p50 CPU); Notochord {n['parameters'] / 1e6:.1f} M parameters")
    else:
        print(f"Notochord not compared: no {args.notochord_venv}/bin/python (see this script's docstring to install it)")
    return 0


def _lstm_step(embed: int, hidden: int, layers: int):
    """nn.LSTM behind a plain forward, since TorchScript cannot script its overloaded one.

    Defined here, not at the top: the Notochord worker runs this file without improv's torch code.
    """
    import torch

    class LstmStep(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(embed, hidden, layers)

        def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            out, (h2, c2) = self.lstm(x, (h, c))
            return out, h2, c2

    return LstmStep()


if __name__ == "__main__":
    sys.exit(main())
