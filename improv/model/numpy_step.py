"""`ImprovNet` one event at a time in numpy (float32): the step improv plays with.

Rebuilt from a model file's weights by `model_file.load`, with today's code, so every file
steps the same way whatever code wrote it. numpy, not TorchScript, because at this size
(a 2-layer LSTM of a few hundred units and four small heads) the cost of an event is the
per-operation overhead, not the arithmetic: TorchScript's is several times numpy's. Same
maths as `step_model.StepModel` (which the file carries for plain torch), to float rounding;
`tests/test_model.py` compares the two.

State is one float32 array (2, layers, hidden + rhythm_hidden + 1), laid out as
`StepModel`'s: h then c of every layer of the main LSTM, then (first row only) of the
rhythm LSTM; the last column holds the last pitch fed (128 = the start token). Treat it as
opaque and immutable: `feed` returns a new one.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from threadpoolctl import threadpool_limits

from improv.model.lstm import INTERVAL_RANGE, N_INTERVAL_IN, ImprovNet
from improv.music.encoding import N_PITCH, START_PITCH

Array = npt.NDArray[np.float32]


_blas_limited = False


def one_blas_thread() -> None:
    """Let numpy's BLAS use one thread, once per process.

    An event's matrix-vector products are too small to share: waking BLAS threads costs more
    than they save, and on a busy machine (a synth, a DAW) it made an event 10x slower.
    """
    global _blas_limited
    if not _blas_limited:
        threadpool_limits(1, user_api="blas")
        _blas_limited = True


def _gelu(x: Array) -> Array:
    """Exact (erf) GELU, by torch's own kernel: numpy has no erf."""
    return torch.nn.functional.gelu(torch.from_numpy(x)).numpy()


class _Head:
    """Linear -> GELU -> Linear (dropout is off at inference)."""

    def __init__(self, weights: dict[str, Array], name: str) -> None:
        self.w1, self.b1 = weights[f"{name}.net.0.weight"], weights[f"{name}.net.0.bias"]
        self.w2, self.b2 = weights[f"{name}.net.3.weight"], weights[f"{name}.net.3.bias"]

    def hidden(self, x: Array) -> Array:
        a = self.w1 @ x
        a += self.b1
        return _gelu(a)

    def out(self, hidden: Array) -> Array:
        z = self.w2 @ hidden
        z += self.b2
        return z


class _Cell:
    """An LSTM cell as one matrix-vector product over [input, h], gates reordered (i, f, o, g)."""

    def __init__(self, w_ih: Array, w_hh: Array, b_ih: Array, b_hh: Array) -> None:
        n = w_hh.shape[1]
        order = np.r_[0 : 2 * n, 3 * n : 4 * n, 2 * n : 3 * n]  # torch's (i, f, g, o) -> (i, f, o, g)
        self.n = n
        self.n_in = w_ih.shape[1]
        self.w = np.ascontiguousarray(np.concatenate([w_ih, w_hh], axis=1)[order])
        self.b = (b_ih + b_hh)[order]

    def __call__(self, x: Array, h: Array, c: Array) -> tuple[Array, Array]:
        n = self.n
        gates = self.w @ np.concatenate((x, h))
        gates += self.b
        sig = gates[: 3 * n]  # sigmoid(x) = (1 + tanh(x / 2)) / 2: no overflow for large |x|
        sig *= 0.5
        np.tanh(sig, out=sig)
        sig *= 0.5
        sig += 0.5
        g = np.tanh(gates[3 * n :])
        c_new = sig[n : 2 * n] * c
        g *= sig[:n]
        c_new += g
        h_new = np.tanh(c_new)
        h_new *= sig[2 * n : 3 * n]
        return h_new, c_new


class NumpyStep:
    """Feed an event, read each head's logits: `StepModel`'s interface on numpy arrays."""

    def __init__(self, net: ImprovNet) -> None:
        one_blas_thread()
        config = net.config
        weights = {k: v.detach().to("cpu", torch.float32).numpy().copy() for k, v in net.state_dict().items()}
        self.n_pitch = N_PITCH
        self.start_pitch = START_PITCH
        self.layers = config.layers
        self.hidden = config.hidden
        self.rhythm_hidden = int(config.rhythm_hidden)
        self.width = self.hidden + self.rhythm_hidden + 1
        self.relative_pitch = bool(config.relative_pitch)
        self.lean_inputs = bool(config.lean_inputs)
        self._pitch_in = weights["pitch_in.weight"]
        self._step_in = weights["step_in.weight"]
        self._duration_in = weights["duration_in.weight"]
        self._velocity_in = weights["velocity_in.weight"]
        self._interval_in = weights["interval_in.weight"]
        self._times_w = weights["times_in.weight"]
        self._times_b = weights["times_in.bias"]
        bins = config.binning
        self._step_s = np.asarray(bins.step_s, dtype=np.float32)
        self._duration_s = np.asarray(bins.duration_s, dtype=np.float32)
        self._cells = [
            _Cell(*(weights[f"lstm.{name}_l{layer}"] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
            for layer in range(self.layers)
        ]
        self._rhythm_cell = _Cell(*(weights[f"rhythm_lstm.{name}_l0"] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
        self._rhythm_mix_w, self._rhythm_mix_b = weights["rhythm_mix.weight"], weights["rhythm_mix.bias"]
        self._step_cond = weights["step_cond.weight"]
        self._pitch_cond = weights["pitch_cond.weight"]
        self._duration_cond = weights["duration_cond.weight"]
        self._step_head = _Head(weights, "step_head")
        self._pitch_head = _Head(weights, "pitch_head")
        self._duration_head = _Head(weights, "duration_head")
        self._velocity_head = _Head(weights, "velocity_head")
        self._interval_w, self._interval_b = weights["pitch_interval_out.weight"], weights["pitch_interval_out.bias"]
        self._cached: tuple[Array, Array] | None = None  # (state, its rhythm heads' input)

    def initial_state(self) -> Array:
        state = np.zeros((2, self.layers, self.width), dtype=np.float32)
        state[:, :, -1] = self.start_pitch
        return state

    @staticmethod
    def last_pitch(state: Array) -> int:
        """The last pitch fed (128: none yet)."""
        return int(state[0, 0, -1])

    def feed(self, state: Array, pitch: int, step: int, duration: int, velocity: int) -> Array:
        """The state after one more event (bin indices; pitch 128 is the start token)."""
        last = self.last_pitch(state)
        if pitch == self.start_pitch or last == self.start_pitch:
            interval = N_INTERVAL_IN - 1
        else:
            interval = min(max(pitch - last, -INTERVAL_RANGE), INTERVAL_RANGE) + INTERVAL_RANGE
        embedded = self._pitch_in[pitch] + self._interval_in[interval]
        embedded += self._step_in[step]
        embedded += self._duration_in[duration]
        embedded += self._velocity_in[velocity]
        x = embedded
        if self.lean_inputs:
            times = np.array([self._step_s[step], self._duration_s[duration]], dtype=np.float32)
            x = self._times_w @ times
            x += self._times_b
            x += self._pitch_in[pitch]
        new = np.zeros_like(state)
        hidden = self.hidden
        for i, cell in enumerate(self._cells):
            h, c = cell(x, state[0, i, :hidden], state[1, i, :hidden])
            new[0, i, :hidden] = h
            new[1, i, :hidden] = c
            x = h
        if self.rhythm_hidden > 0:
            own = state[:, 0, hidden:-1]
            new[0, 0, hidden:-1], new[1, 0, hidden:-1] = self._rhythm_cell(embedded, own[0], own[1])
        new[:, :, -1] = pitch
        return new

    def _rhythm_top(self, state: Array) -> Array:
        """What the rhythm heads start from: the main LSTM's output, plus the rhythm LSTM's."""
        cached = self._cached
        if cached is not None and cached[0] is state:
            return cached[1]
        top = state[0, -1, : self.hidden]
        if self.rhythm_hidden > 0:
            top = self._rhythm_mix_w @ state[0, 0, self.hidden : -1]
            top += self._rhythm_mix_b
            top += state[0, -1, : self.hidden]
        self._cached = (state, top)
        return top

    def step_logits(self, state: Array) -> Array:
        head = self._step_head
        return head.out(head.hidden(self._rhythm_top(state)))

    def pitch_logits(self, state: Array, step: int) -> Array:
        head = self._pitch_head
        hidden = head.hidden(state[0, -1, : self.hidden] + self._step_cond[step])
        logits = head.out(hidden)
        last = self.last_pitch(state)
        if self.relative_pitch and last != self.start_pitch:
            scores = self._interval_w @ hidden
            scores += self._interval_b
            logits += scores[self.n_pitch - 1 - last : 2 * self.n_pitch - 1 - last]
        return logits

    def duration_logits(self, state: Array, step: int, pitch: int) -> Array:
        head = self._duration_head
        x = self._rhythm_top(state) + self._step_cond[step]
        x += self._pitch_cond[pitch]
        return head.out(head.hidden(x))

    def velocity_logits(self, state: Array, step: int, pitch: int, duration: int) -> Array:
        head = self._velocity_head
        x = self._rhythm_top(state) + self._step_cond[step]
        x += self._pitch_cond[pitch]
        x += self._duration_cond[duration]
        return head.out(head.hidden(x))
