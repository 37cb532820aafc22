"""The single-step twin of `ImprovNet` that the model file holds, scripted with TorchScript.

It keeps a model file usable from plain torch (`torch.jit.load`, then `feed` and the
`*_logits` methods), without improv; improv itself rebuilds the step from the file's weights
with today's code (`numpy_step`), and samples with `sampling`, so the file carries no sampler.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor, nn

from improv.model.lstm import INTERVAL_RANGE, N_INTERVAL_IN, ImprovNet
from improv.model.model_config import FORMAT, FORMAT_VERSION
from improv.music.encoding import N_PITCH, START_PITCH, Bins


class StepModel(nn.Module):
    """One event at a time: `feed` an event, read each head's logits; scripted for export.

    State is one tensor (2, layers, hidden + rhythm_hidden + 1): h then c of
    every layer of the main LSTM, then (first row only) of the rhythm LSTM; the
    last column holds the last pitch fed (128 = the start token). Treat it as
    opaque: get one from `initial_state` and pass back what `feed` returns.
    """

    def __init__(self, net: ImprovNet, summary: dict[str, Any] | None = None) -> None:
        super().__init__()
        config = net.config
        self.format = FORMAT
        self.format_version = FORMAT_VERSION
        self.bins_json = json.dumps(config.bins)
        self.config_json = json.dumps(asdict(config))
        self.summary_json = json.dumps(summary or {})
        self.n_pitch = N_PITCH
        self.start_pitch = START_PITCH
        self.layers = config.layers
        self.hidden = config.hidden
        self.pitch_in = net.pitch_in
        self.step_in = net.step_in
        self.duration_in = net.duration_in
        self.velocity_in = net.velocity_in
        cells = []
        for layer in range(config.layers):
            cell = nn.LSTMCell(config.embed if layer == 0 else config.hidden, config.hidden)
            cell.weight_ih = getattr(net.lstm, f"weight_ih_l{layer}")
            cell.weight_hh = getattr(net.lstm, f"weight_hh_l{layer}")
            cell.bias_ih = getattr(net.lstm, f"bias_ih_l{layer}")
            cell.bias_hh = getattr(net.lstm, f"bias_hh_l{layer}")
            cells.append(cell)
        self.cells = nn.ModuleList(cells)
        self.step_cond = net.step_cond
        self.pitch_cond = net.pitch_cond
        self.duration_cond = net.duration_cond
        self.step_head = net.step_head
        self.pitch_head = net.pitch_head
        self.duration_head = net.duration_head
        self.velocity_head = net.velocity_head
        self.interval_in = net.interval_in
        self.pitch_interval_out = net.pitch_interval_out
        self.relative_pitch = bool(config.relative_pitch)
        self.n_duration = Bins.from_dict(config.bins).n_duration
        self.n_velocity = Bins.from_dict(config.bins).n_velocity
        self.interval_range = INTERVAL_RANGE
        self.no_interval = N_INTERVAL_IN - 1
        self.rhythm_hidden = int(config.rhythm_hidden)
        self.width = self.hidden + self.rhythm_hidden + 1
        rhythm_cell = nn.LSTMCell(config.embed, max(self.rhythm_hidden, 1))
        rhythm_cell.weight_ih = net.rhythm_lstm.weight_ih_l0
        rhythm_cell.weight_hh = net.rhythm_lstm.weight_hh_l0
        rhythm_cell.bias_ih = net.rhythm_lstm.bias_ih_l0
        rhythm_cell.bias_hh = net.rhythm_lstm.bias_hh_l0
        self.rhythm_cell = rhythm_cell
        self.rhythm_mix = net.rhythm_mix
        self.lean_inputs = bool(config.lean_inputs)
        self.times_in = net.times_in
        self.step_seconds = list(Bins.from_dict(config.bins).step_s)
        self.duration_seconds = list(Bins.from_dict(config.bins).duration_s)

    @torch.jit.export
    def initial_state(self) -> Tensor:
        state = torch.zeros(2, self.layers, self.width)
        state[:, :, self.width - 1] = float(self.start_pitch)
        return state

    def _last_pitch(self, state: Tensor) -> int:
        return int(state[0, 0, self.width - 1].item())

    @torch.jit.export
    def feed(self, state: Tensor, pitch: int, step: int, duration: int, velocity: int) -> Tensor:
        """Advance the state by one event (bin indices; pitch 128 is the start token)."""
        last = self._last_pitch(state)
        if pitch == self.start_pitch or last == self.start_pitch:
            interval = self.no_interval
        else:
            interval = min(max(pitch - last, -self.interval_range), self.interval_range) + self.interval_range
        x = (
            self.pitch_in.weight[pitch] + self.interval_in.weight[interval] + self.step_in.weight[step]
            + self.duration_in.weight[duration] + self.velocity_in.weight[velocity]
        ).unsqueeze(0)
        embedded = x
        if self.lean_inputs:
            times = torch.tensor([self.step_seconds[step], self.duration_seconds[duration]])
            x = (self.pitch_in.weight[pitch] + self.times_in(times)).unsqueeze(0)
        hs: list[Tensor] = []
        cs: list[Tensor] = []
        i = 0
        for cell in self.cells:
            h, c = cell(x, (state[0, i, : self.hidden].unsqueeze(0), state[1, i, : self.hidden].unsqueeze(0)))
            hs.append(h)
            cs.append(c)
            x = h
            i += 1
        core = torch.stack([torch.cat(hs), torch.cat(cs)])
        if self.rhythm_hidden > 0:
            own = state[:, 0, self.hidden : self.width - 1]
            h, c = self.rhythm_cell(embedded, (own[0].unsqueeze(0), own[1].unsqueeze(0)))
            rhythm = torch.zeros(2, self.layers, self.rhythm_hidden)
            rhythm[0, 0] = h[0]
            rhythm[1, 0] = c[0]
            core = torch.cat([core, rhythm], dim=2)
        return torch.cat([core, torch.full((2, self.layers, 1), float(pitch))], dim=2)

    def _top(self, state: Tensor) -> Tensor:
        return state[0, -1, : self.hidden]

    def _rhythm_top(self, state: Tensor) -> Tensor:
        """What the rhythm heads start from: the main LSTM's output, plus the rhythm LSTM's."""
        top = state[0, -1, : self.hidden]
        if self.rhythm_hidden > 0:
            top = top + self.rhythm_mix(state[0, 0, self.hidden : self.width - 1])
        return top

    @torch.jit.export
    def step_logits(self, state: Tensor) -> Tensor:
        return self.step_head(self._rhythm_top(state))

    @torch.jit.export
    def pitch_logits(self, state: Tensor, step: int) -> Tensor:
        hidden = self.pitch_head.hidden(self._top(state) + self.step_cond.weight[step])
        logits = self.pitch_head.out(hidden)
        last = self._last_pitch(state)
        if self.relative_pitch and last != self.start_pitch:
            scores = self.pitch_interval_out(hidden)
            logits = logits + scores[self.n_pitch - 1 - last : 2 * self.n_pitch - 1 - last]
        return logits

    @torch.jit.export
    def duration_logits(self, state: Tensor, step: int, pitch: int) -> Tensor:
        return self.duration_head(self._rhythm_top(state) + self.step_cond.weight[step] + self.pitch_cond.weight[pitch])

    @torch.jit.export
    def velocity_logits(self, state: Tensor, step: int, pitch: int, duration: int) -> Tensor:
        h = self._rhythm_top(state) + self.step_cond.weight[step] + self.pitch_cond.weight[pitch]
        return self.velocity_head(h + self.duration_cond.weight[duration])

    def forward(self, state: Tensor, pitch: int, step: int, duration: int, velocity: int) -> Tensor:
        return self.feed(state, pitch, step, duration, velocity)
