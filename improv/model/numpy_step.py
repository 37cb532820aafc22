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

import math

import numpy as np
import numpy.typing as npt
import torch
from threadpoolctl import threadpool_limits

from improv.model.lstm import INTERVAL_RANGE, N_INTERVAL_IN, ImprovNet
from improv.music.encoding import N_PITCH, START_PITCH

Array = npt.NDArray[np.float32]
TOKEN_KINDS = ("pitch", "interval", "step", "duration", "velocity")  # what an event feeds the LSTMs


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


# GELU(x) = x Phi(x) = max(x, 0) - |x| q(|x|), q = (1 - erf(|x| / sqrt 2)) / 2, with erf from Abramowitz &
# Stegun 7.1.26 (|error| < 1.5e-7): q = t P(t) exp(-x^2 / 2), t = 1 / (1 + p |x| / sqrt 2). The 1/2 and
# the 1/sqrt 2 are folded into the constants.
_GELU_P = np.float32(0.3275911 / math.sqrt(2.0))
_GELU_C = [np.float32(a / 2) for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)]


def _gelu(x: Array) -> Array:
    """GELU as torch computes it (erf, not the tanh approximation), as a new float32 array.

    numpy, not torch: torch's erf would release the GIL four times an event, and on the live
    engine's thread each release can wait a whole switch interval for the MIDI threads (over JACK
    that was ~22 ms a note). In float32 with every step in place: an event's cost is per-call
    overhead, so fewer and cheaper calls (a table in `np.interp` measured slower: cache misses).
    """
    ax = np.abs(x)
    t = ax * _GELU_P
    t += 1.0
    np.reciprocal(t, out=t)
    q = t * _GELU_C[0]
    for c in _GELU_C[1:]:
        q += c
        q *= t
    e = np.square(ax)
    e *= -0.5
    np.exp(e, out=e)
    q *= e
    q *= ax
    r = np.maximum(x, 0.0)
    r -= q
    return r


class _Cell:
    """An LSTM cell with its gates reordered (i, f, o, g), so one tanh covers all four.

    sigmoid(x) = (1 + tanh(x / 2)) / 2 (no overflow for large |x|): the rows of the three
    sigmoid gates are stored halved (exact in binary floating point), so the whole gate vector
    goes through one tanh. The caller supplies W_ih @ x + biases for the first layer: a sum of
    table rows (`_InputGates`), the input being a sum of embeddings.
    """

    def __init__(self, w_ih: Array, w_hh: Array, b_ih: Array, b_hh: Array) -> None:
        n = w_hh.shape[1]
        order = np.r_[0 : 2 * n, 3 * n : 4 * n, 2 * n : 3 * n]  # torch's (i, f, g, o) -> (i, f, o, g)
        scale = np.ones(4 * n, dtype=np.float32)
        scale[: 3 * n] = 0.5
        self.n = n
        self.w_ih = np.ascontiguousarray(w_ih[order] * scale[:, None])
        self.w_hh = np.ascontiguousarray(w_hh[order] * scale[:, None])
        self.w = np.ascontiguousarray(np.concatenate([self.w_ih, self.w_hh], axis=1))  # for a layer fed by a layer
        self.b = (b_ih + b_hh)[order] * scale

    def from_layer(self, x: Array, h: Array, c: Array, h_out: Array, c_out: Array) -> None:
        gates = self.w @ np.concatenate((x, h))
        gates += self.b
        self.update(gates, c, h_out, c_out)

    def from_gates(self, input_gates: Array, h: Array, c: Array, h_out: Array, c_out: Array) -> None:
        gates = self.w_hh @ h
        gates += input_gates
        self.update(gates, c, h_out, c_out)

    def update(self, gates: Array, c: Array, h_out: Array, c_out: Array) -> None:
        """The new h and c, written into `h_out` and `c_out` (views into the next state)."""
        n = self.n
        np.tanh(gates, out=gates)
        sig = gates[: 3 * n]
        sig *= 0.5
        sig += 0.5
        np.multiply(sig[n : 2 * n], c, out=c_out)
        g = gates[3 * n :]
        g *= sig[:n]
        c_out += g
        np.tanh(c_out, out=h_out)
        h_out *= sig[2 * n : 3 * n]


class _InputGates:
    """W_ih @ x + biases for an input x that is a sum of embedding rows (and of linear maps of
    scalars), as a sum of precomputed rows: one gather and one sum instead of a product per event."""

    def __init__(self, w_ih: Array, bias: Array, tables: dict[str, Array], constant: Array | None = None) -> None:
        rows = [table @ w_ih.T for table in tables.values()]
        offsets = np.cumsum([0] + [len(r) for r in rows])
        self.offsets = [(TOKEN_KINDS.index(kind), int(offset)) for kind, offset in zip(tables, offsets)]
        self.bias_row = int(offsets[-1])
        full_bias = bias + (w_ih @ constant if constant is not None else 0.0)
        self.table = np.ascontiguousarray(np.concatenate(rows + [full_bias[None, :]]), dtype=np.float32)

    def __call__(self, tokens: tuple[int, ...]) -> Array:
        """`tokens` in `TOKEN_KINDS` order."""
        rows = [offset + tokens[i] for i, offset in self.offsets]
        rows.append(self.bias_row)
        return np.add.reduce(self.table[rows], axis=0)


class _Head:
    """Linear -> GELU -> Linear (dropout is off at inference); the first Linear of the inputs
    that are embeddings of tokens (the parts of the event already chosen) is precomputed."""

    def __init__(self, weights: dict[str, Array], name: str, conditions: dict[str, Array]) -> None:
        self.w1, self.b1 = weights[f"{name}.net.0.weight"], weights[f"{name}.net.0.bias"]
        self.w2, self.b2 = weights[f"{name}.net.3.weight"], weights[f"{name}.net.3.bias"]
        self.conditions = [np.ascontiguousarray(table @ self.w1.T) for table in conditions.values()]

    def hidden(self, first: Array, *tokens: int) -> Array:
        if not tokens:
            return _gelu(first)
        a = first + self.conditions[0][tokens[0]]
        for table, token in zip(self.conditions[1:], tokens[1:]):
            a += table[token]
        return _gelu(a)

    def out(self, hidden: Array) -> Array:
        z = self.w2 @ hidden
        z += self.b2
        return z


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
        bins = config.binning
        embeddings = {kind: weights[f"{kind}_in.weight"] for kind in TOKEN_KINDS}
        lstm = [[weights[f"lstm.{name}_l{layer}"] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                for layer in range(self.layers)]
        self._cells = [_Cell(*layer) for layer in lstm]
        first = self._cells[0]
        if config.lean_inputs:  # pitch plus times_in(step s, duration s), a linear map
            times_w = weights["times_in.weight"]
            lean = {
                "pitch": embeddings["pitch"],
                "step": np.outer(np.asarray(bins.step_s, dtype=np.float32), times_w[:, 0]),
                "duration": np.outer(np.asarray(bins.duration_s, dtype=np.float32), times_w[:, 1]),
            }
            self._input = _InputGates(first.w_ih, first.b, lean, weights["times_in.bias"])
        else:
            self._input = _InputGates(first.w_ih, first.b, embeddings)
        rhythm = [weights[f"rhythm_lstm.{name}_l0"] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        self._rhythm_cell = _Cell(*rhythm)
        self._rhythm_input = _InputGates(self._rhythm_cell.w_ih, self._rhythm_cell.b, embeddings)
        self._rhythm_mix_w, self._rhythm_mix_b = weights["rhythm_mix.weight"], weights["rhythm_mix.bias"]
        step_cond, pitch_cond = weights["step_cond.weight"], weights["pitch_cond.weight"]
        duration_cond = weights["duration_cond.weight"]
        self._step_head = _Head(weights, "step_head", {})
        self._pitch_head = _Head(weights, "pitch_head", {"step": step_cond})
        self._duration_head = _Head(weights, "duration_head", {"step": step_cond, "pitch": pitch_cond})
        self._velocity_head = _Head(weights, "velocity_head", {"step": step_cond, "pitch": pitch_cond,
                                                               "duration": duration_cond})
        self._interval_w, self._interval_b = weights["pitch_interval_out.weight"], weights["pitch_interval_out.bias"]
        # The rhythm heads' first layers (step, duration, velocity: they read the same input) in one product.
        rhythm_heads = (self._step_head, self._duration_head, self._velocity_head)
        self._rhythm_first_w = np.ascontiguousarray(np.concatenate([head.w1 for head in rhythm_heads]))
        self._rhythm_first_b = np.concatenate([head.b1 for head in rhythm_heads])
        edges = np.cumsum([0] + [head.w1.shape[0] for head in rhythm_heads])
        self._rhythm_slices = [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
        self._cached: tuple[Array, tuple[Array, ...]] | None = None  # (state, the heads' first layers there)

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
        tokens = (pitch, interval, step, duration, velocity)  # TOKEN_KINDS
        new = np.zeros_like(state)
        hidden = self.hidden
        self._cells[0].from_gates(self._input(tokens), state[0, 0, :hidden], state[1, 0, :hidden],
                                  new[0, 0, :hidden], new[1, 0, :hidden])
        for i in range(1, self.layers):
            self._cells[i].from_layer(new[0, i - 1, :hidden], state[0, i, :hidden], state[1, i, :hidden],
                                      new[0, i, :hidden], new[1, i, :hidden])
        if self.rhythm_hidden > 0:
            self._rhythm_cell.from_gates(self._rhythm_input(tokens), state[0, 0, hidden:-1], state[1, 0, hidden:-1],
                                         new[0, 0, hidden:-1], new[1, 0, hidden:-1])
        new[:, :, -1] = pitch
        return new

    def _firsts(self, state: Array) -> tuple[Array, ...]:
        """The heads' first layers on what they start from (cached for the last state): the main
        LSTM's output for pitch; for the rhythm heads, plus the rhythm LSTM's."""
        cached = self._cached
        if cached is not None and cached[0] is state:
            return cached[1]
        top = state[0, -1, : self.hidden]
        rhythm = top
        if self.rhythm_hidden > 0:
            rhythm = self._rhythm_mix_w @ state[0, 0, self.hidden : -1]
            rhythm += self._rhythm_mix_b
            rhythm += top
        pitch_head = self._pitch_head
        pitch = pitch_head.w1 @ top
        pitch += pitch_head.b1
        a = self._rhythm_first_w @ rhythm
        a += self._rhythm_first_b
        step, duration, velocity = (a[part] for part in self._rhythm_slices)
        firsts = (step, pitch, duration, velocity)
        self._cached = (state, firsts)
        return firsts

    def step_logits(self, state: Array) -> Array:
        head = self._step_head
        return head.out(head.hidden(self._firsts(state)[0]))

    def pitch_logits(self, state: Array, step: int) -> Array:
        head = self._pitch_head
        hidden = head.hidden(self._firsts(state)[1], step)
        logits = head.out(hidden)
        last = self.last_pitch(state)
        if self.relative_pitch and last != self.start_pitch:
            scores = self._interval_w @ hidden
            scores += self._interval_b
            logits += scores[self.n_pitch - 1 - last : 2 * self.n_pitch - 1 - last]
        return logits

    def duration_logits(self, state: Array, step: int, pitch: int) -> Array:
        head = self._duration_head
        return head.out(head.hidden(self._firsts(state)[2], step, pitch))

    def velocity_logits(self, state: Array, step: int, pitch: int, duration: int) -> Array:
        head = self._velocity_head
        return head.out(head.hidden(self._firsts(state)[3], step, pitch, duration))
