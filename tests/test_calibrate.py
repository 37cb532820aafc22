"""Head temperatures: fitted on held-out data, baked into the output layers."""

from __future__ import annotations

import torch

from improv.data.dataset import to_sequence
from improv.model.network import HEADS, ImprovNet, ModelConfig
from improv.music.events import Note
from improv.training.calibrate import (
    TEMPERATURES,
    apply_temperatures,
    fit_temperatures,
    head_logits,
    nll_at,
)


def tiny_net() -> ImprovNet:
    torch.manual_seed(0)
    return ImprovNet(ModelConfig(hidden=16, layers=1, embed=8, head_hidden=8, dropout=0.0)).eval()


def works() -> list:
    notes = [Note(60 + (i * 5) % 12, 40 + (i * 9) % 80, 0.25 * i, 0.2) for i in range(40)]
    return [to_sequence("a", notes, has_velocity=True), to_sequence("b", notes[::2], has_velocity=True)]


def test_temperatures_divide_every_head_and_keep_the_argmax() -> None:
    net = tiny_net()
    before = head_logits(net, works())
    apply_temperatures(net, {"step": 2.0, "pitch": 4.0, "duration": 0.5, "velocity": 1.0})
    after = head_logits(net, works())
    for head, t in (("step", 2.0), ("pitch", 4.0), ("duration", 0.5), ("velocity", 1.0)):
        torch.testing.assert_close(after[head][0], before[head][0] / t, rtol=1e-5, atol=1e-5)
        assert torch.equal(after[head][1], before[head][1])


def test_an_overconfident_network_gets_softened_and_scores_better() -> None:
    net = tiny_net()
    with torch.no_grad():  # an untrained network made sure of itself: its guesses are random
        apply_temperatures(net, {head: 0.2 for head in HEADS})
    temperatures = fit_temperatures(net, [works()])
    assert all(temperatures[head] == max(TEMPERATURES) for head in HEADS)
    before = head_logits(net, works())
    apply_temperatures(net, temperatures)
    after = head_logits(net, works())
    for head in HEADS:
        assert nll_at(*after[head], 1.0) < nll_at(*before[head], 1.0) - 0.1
