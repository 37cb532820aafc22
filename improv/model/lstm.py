"""The trainable LSTM and its config.

Training uses `nn.LSTM` over whole sequences. One event at a time (the live
instrument) the same weights run in `step_model.StepModel` (TorchScript, what
the model file holds) and `numpy_step.NumpyStep` (what improv plays with).

An event is predicted as a chain: step first (when does the next note come),
then pitch given the step, duration given both, velocity given all three.
Knowing the step tells the pitch head whether it is adding a chord tone above
the last note or starting a new onset.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from improv.model.model_config import HEADS, INTERVAL_RANGE, N_INTERVAL_IN, N_INTERVAL_OUT, ModelConfig
from improv.music.encoding import N_PITCH, START_PITCH

__all__ = ["HEADS", "INTERVAL_RANGE", "N_INTERVAL_IN", "N_INTERVAL_OUT", "ImprovNet", "ModelConfig"]

class _Head(nn.Module):
    def __init__(self, hidden: int, head_hidden: int, n_out: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden, head_hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(head_hidden, n_out))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def hidden(self, x: Tensor) -> Tensor:
        return self.net[2](self.net[1](self.net[0](x)))

    def out(self, hidden: Tensor) -> Tensor:
        return self.net[3](hidden)


def interval_index(pitch: Tensor, previous: Tensor) -> Tensor:
    """Input index of the interval previous -> pitch (clipped); start tokens get their own index."""
    clipped = (pitch - previous).clamp(-INTERVAL_RANGE, INTERVAL_RANGE) + INTERVAL_RANGE
    none = (pitch == START_PITCH) | (previous == START_PITCH)
    return torch.where(none, torch.full_like(clipped, N_INTERVAL_IN - 1), clipped)


def scale_gradient(x: Tensor, factor: float) -> Tensor:
    """`x` going forward; `factor` times its gradient going back."""
    if factor == 1.0:
        return x
    return x * factor + x.detach() * (1.0 - factor)


class ImprovNet(nn.Module):
    """The trainable network: embeddings -> nn.LSTM -> four chained heads."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        bins = config.binning
        e, h = config.embed, config.hidden
        self.pitch_in = nn.Embedding(N_PITCH + 1, e)
        self.step_in = nn.Embedding(bins.n_step, e)
        self.duration_in = nn.Embedding(bins.n_duration, e)
        self.velocity_in = nn.Embedding(bins.n_velocity, e)
        self.input_dropout = nn.Dropout(config.dropout / 2)
        self.lstm = nn.LSTM(e, h, config.layers, batch_first=True, dropout=config.dropout)
        self.out_dropout = nn.Dropout(config.dropout)
        # Embeddings of the already chosen parts of the next event, added to the LSTM output.
        self.step_cond = nn.Embedding(bins.n_step, h)
        self.pitch_cond = nn.Embedding(N_PITCH, h)
        self.duration_cond = nn.Embedding(bins.n_duration, h)
        hh, d = config.head_hidden, config.dropout
        self.step_head = _Head(h, hh, bins.n_step, d)
        self.pitch_head = _Head(h, hh, N_PITCH, d)
        self.duration_head = _Head(h, hh, bins.n_duration, d)
        self.velocity_head = _Head(h, hh, bins.n_velocity, d)
        self.interval_in = nn.Embedding(N_INTERVAL_IN, e)
        self.pitch_interval_out = nn.Linear(hh, N_INTERVAL_OUT)
        if not config.relative_pitch:  # present but zero, so one code path serves both kinds
            for parameter in (*self.interval_in.parameters(), *self.pitch_interval_out.parameters()):
                nn.init.zeros_(parameter)
                parameter.requires_grad_(False)
        self.register_buffer("_pitches", torch.arange(N_PITCH), persistent=False)
        self.times_in = nn.Linear(2, e)  # (step s, duration s) of the event, for lean inputs
        if not config.lean_inputs:
            for parameter in self.times_in.parameters():
                nn.init.zeros_(parameter)
                parameter.requires_grad_(False)
        self.register_buffer("_step_s", torch.tensor(bins.step_s, dtype=torch.float32), persistent=False)
        self.register_buffer("_duration_s", torch.tensor(bins.duration_s, dtype=torch.float32), persistent=False)
        rh = max(config.rhythm_hidden, 1)  # a 1-unit stand-in keeps one code path (and file layout)
        self.rhythm_lstm = nn.LSTM(e, rh, 1, batch_first=True)
        self.rhythm_mix = nn.Linear(rh, h)
        if not config.rhythm_hidden:
            for parameter in (*self.rhythm_lstm.parameters(), *self.rhythm_mix.parameters()):
                nn.init.zeros_(parameter)
                parameter.requires_grad_(False)

    def embed(self, pitch: Tensor, step: Tensor, duration: Tensor, velocity: Tensor) -> Tensor:
        previous = torch.cat([torch.full_like(pitch[:, :1], START_PITCH), pitch[:, :-1]], dim=1)
        return (
            self.pitch_in(pitch) + self.interval_in(interval_index(pitch, previous))
            + self.step_in(step) + self.duration_in(duration) + self.velocity_in(velocity)
        )

    def lean_embed(self, pitch: Tensor, step: Tensor, duration: Tensor) -> Tensor:
        times = torch.stack([self._step_s[step], self._duration_s[duration]], dim=-1)
        return self.pitch_in(pitch) + self.times_in(times)

    def forward(self, inputs: tuple[Tensor, ...], targets: tuple[Tensor, ...]) -> dict[str, Tensor]:
        """Logits for every head, teacher-forced: (B, T) token tensors in (pitch, step, duration, velocity) order."""
        x = self.input_dropout(self.embed(*inputs))
        main = self.input_dropout(self.lean_embed(*inputs[:3])) if self.config.lean_inputs else x
        out, _ = self.lstm(main)
        out = self.out_dropout(out)
        pitch, step, duration, _ = targets
        with_step = out + self.step_cond(step)
        hidden = self.pitch_head.hidden(with_step)
        rhythm = scale_gradient(out, self.config.rhythm_grad)
        if self.config.rhythm_hidden:
            own, _ = self.rhythm_lstm(x)
            rhythm = rhythm + self.rhythm_mix(self.out_dropout(own))
        with_pitch = rhythm + self.step_cond(step) + self.pitch_cond(pitch)
        return {
            "step": self.step_head(rhythm),
            "pitch": self.pitch_head.out(hidden) + self._interval_logits(hidden, inputs[0]),
            "duration": self.duration_head(with_pitch),
            "velocity": self.velocity_head(with_pitch + self.duration_cond(duration)),
        }

    def _interval_logits(self, hidden: Tensor, last_pitch: Tensor) -> Tensor:
        """Interval logits moved onto absolute pitches: entry p scores the interval last -> p."""
        scores = self.pitch_interval_out(hidden)  # (B, T, N_INTERVAL_OUT)
        index = self._pitches + (N_PITCH - 1) - last_pitch.clamp(max=N_PITCH - 1).unsqueeze(-1)
        moved = scores.gather(-1, index)
        return moved.masked_fill((last_pitch == START_PITCH).unsqueeze(-1), 0.0)
