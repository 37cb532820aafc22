"""Temperature-scaled heads, fitted on held-out data and baked into the weights.

A network trained to the last decimal on its corpus is too sure of itself on other music. One
temperature per head, fitted on validation works by minimising their NLL, divides that head's
output layer, so the file keeps its interface (and the live engine its speed): the logits are
simply softer. Offline only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from improv.data.dataset import EventArrays, encode_sequence, pad_stack, split_batch
from improv.model.network import HEADS, ImprovNet

TEMPERATURES = tuple(np.round(np.arange(0.8, 1.61, 0.02), 2).tolist())


@torch.no_grad()
def head_logits(net: ImprovNet, sequences: Sequence[EventArrays], batch: int = 8) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per head: the teacher-forced logits of every scored event (N, n) and their targets (N,)."""
    net.eval()
    bins = net.config.binning
    encoded = sorted((encode_sequence(s, bins) for s in sequences if len(s)), key=len)
    logits: dict[str, list[torch.Tensor]] = {h: [] for h in HEADS}
    targets: dict[str, list[torch.Tensor]] = {h: [] for h in HEADS}
    for i in range(0, len(encoded), batch):
        tokens = pad_stack(encoded[i : i + batch])
        inputs, outs, valid, velocity_valid = split_batch(tokens)
        out = net(inputs, outs)
        wanted = dict(zip(("pitch", "step", "duration", "velocity"), outs))
        for head in HEADS:
            mask = velocity_valid if head == "velocity" else valid
            logits[head].append(out[head][mask])
            targets[head].append(wanted[head][mask])
    return {h: (torch.cat(logits[h]), torch.cat(targets[h])) for h in HEADS if logits[h] and sum(map(len, targets[h]))}


def nll_at(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> float:
    return float(F.cross_entropy(logits / temperature, targets))


def fit_temperatures(
    net: ImprovNet, sets: Sequence[Sequence[EventArrays]], grid: Sequence[float] = TEMPERATURES
) -> dict[str, float]:
    """Per head, the grid temperature with the lowest mean over `sets` of each set's NLL per event."""
    scored = [head_logits(net, sequences) for sequences in sets]
    out = {}
    for head in HEADS:
        pairs = [s[head] for s in scored if head in s]
        if not pairs:
            out[head] = 1.0
            continue
        losses = [np.mean([nll_at(logits, targets, t) for logits, targets in pairs]) for t in grid]
        out[head] = float(grid[int(np.argmin(losses))])
    return out


@torch.no_grad()
def apply_temperatures(net: ImprovNet, temperatures: dict[str, float]) -> None:
    """Divide each head's output layer (for pitch also the interval output) by its temperature, in place."""
    layers = {
        "step": [net.step_head.net[3]],
        "pitch": [net.pitch_head.net[3], net.pitch_interval_out],
        "duration": [net.duration_head.net[3]],
        "velocity": [net.velocity_head.net[3]],
    }
    for head, temperature in temperatures.items():
        for layer in layers[head]:
            layer.weight.div_(temperature)
            layer.bias.div_(temperature)


def _main(argv: Sequence[str] | None = None) -> int:
    """`python -m improv.training.calibrate MODEL OUT`: fit and bake head temperatures on the validation
    sets `improv train` uses (the default corpus's held-out works, and held-out tunes of the
    collections the model was trained on)."""
    import argparse

    from improv.data.corpus import load_default_corpus
    from improv.data.dataset import to_sequence
    from improv.data.tunes import load_tunes
    from improv.model.network import export, load, network_from

    parser = argparse.ArgumentParser(prog="python -m improv.training.calibrate", description=_main.__doc__)
    parser.add_argument("model")
    parser.add_argument("out")
    args = parser.parse_args(argv)
    model = load(args.model)
    net = network_from(model)
    sets = [[to_sequence(w.name, w.notes, w.has_dynamics) for w in load_default_corpus() if w.split == "valid"]]
    collections = model.summary.get("tune_collections", [])
    if collections:
        sets.append([to_sequence(w.name, w.notes, w.has_dynamics) for c in collections for w in load_tunes(c)
                     if w.split == "valid"])
    temperatures = fit_temperatures(net, sets)
    apply_temperatures(net, temperatures)
    summary = dict(model.summary)
    summary["head_temperatures"] = temperatures
    export(net, args.out, summary)
    print(f"wrote {args.out}: head temperatures {temperatures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
