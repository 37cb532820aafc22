"""`ImprovNet` one event at a time on numpy arrays (float32): the step improv plays with.

Rebuilt from a model file's weights by `model_file.load`, with today's code, so every file
steps the same way whatever code wrote it. Not TorchScript, because at this size (a 2-layer
LSTM of a few hundred units and four small heads) an event's cost was per-operation overhead,
not arithmetic: TorchScript's is several times numpy's, and numpy's was still most of the event.
This class lays the weights out once (torch's gate order, the first layer's input products as
precomputed table rows, the rhythm heads' first layers stacked); the arithmetic of an event is
six compiled calls into `kernels`. Same maths as `step_model.StepModel` (which the file carries
for plain torch), to float rounding; `tests/test_model.py` compares the two.

State is one float32 array (2, layers, hidden + rhythm_hidden + 1), laid out as
`StepModel`'s: h then c of every layer of the main LSTM, then (first row only) of the
rhythm LSTM; the last column holds the last pitch fed (128 = the start token). Treat it as
opaque and immutable: `feed` returns a new one.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from improv.model import kernels
from improv.model.model_config import ModelConfig
from improv.music.encoding import N_PITCH, START_PITCH

Array = npt.NDArray[np.float32]
TOKEN_KINDS = ("pitch", "interval", "step", "duration", "velocity")  # what an event feeds the LSTMs


class _InputGates:
    """W_ih @ x + biases for an input x that is a sum of embedding rows (and of linear maps of
    scalars), as a sum of precomputed rows: `kernels.feed` gathers them instead of a product."""

    def __init__(self, w_ih: Array, bias: Array, tables: dict[str, Array], constant: Array | None = None) -> None:
        rows = [table @ w_ih.T for table in tables.values()]
        offsets = np.cumsum([0] + [len(r) for r in rows])
        self.kinds = np.array([TOKEN_KINDS.index(kind) for kind in tables], dtype=np.int64)
        self.offsets = np.asarray(offsets[:-1], dtype=np.int64)
        full_bias = bias + (w_ih @ constant if constant is not None else 0.0)
        self.table = np.ascontiguousarray(np.concatenate(rows + [full_bias[None, :]]), dtype=np.float32)


def _f32(a: Array) -> Array:
    return np.ascontiguousarray(a, dtype=np.float32)


class _Head:
    """Linear -> GELU -> Linear (dropout is off at inference); the first Linear of the inputs
    that are embeddings of tokens (the parts of the event already chosen) is precomputed."""

    def __init__(self, weights: Mapping[str, Array], name: str, conditions: dict[str, Array],
                 interval: str | None = None) -> None:
        self.w1, self.b1 = weights[f"{name}.net.0.weight"], weights[f"{name}.net.0.bias"]
        self.w2, self.b2 = _f32(weights[f"{name}.net.3.weight"]), _f32(weights[f"{name}.net.3.bias"])
        tables = [_f32(table @ self.w1.T) for table in conditions.values()]
        unused = np.zeros((1, self.w1.shape[0]), dtype=np.float32)
        self.tables = tuple(tables + [unused] * (3 - len(tables)))  # (step, pitch, duration), as conditioned
        # The interval scores (`interval`: their layer's name, the pitch head of a relative model);
        # a head without them passes the kernel empty stand-ins of the right shapes.
        self.interval = ((_f32(weights[f"{interval}.weight"]), _f32(weights[f"{interval}.bias"])) if interval
                         else (unused, np.zeros(1, dtype=np.float32)))

    def logits(self, first: Array, step: int = -1, pitch: int = -1, duration: int = -1, last: int = -1) -> Array:
        return kernels.head(first, *self.tables, int(step), int(pitch), int(duration), self.w2, self.b2,
                            *self.interval, int(last))


class NumpyStep:
    """Feed an event, read each head's logits: `StepModel`'s interface on numpy arrays."""

    def __init__(self, config: ModelConfig, weights: Mapping[str, Array]) -> None:
        """`weights`: `ImprovNet`'s state dict as float32 arrays (no torch needed)."""
        self.n_pitch = N_PITCH
        self.start_pitch = START_PITCH
        self.layers = config.layers
        self.hidden = config.hidden
        self.rhythm_hidden = int(config.rhythm_hidden)
        self.width = self.hidden + self.rhythm_hidden + 1
        self.relative_pitch = bool(config.relative_pitch)
        bins = config.binning
        embeddings = {kind: weights[f"{kind}_in.weight"] for kind in TOKEN_KINDS}

        def lstm(prefix: str, layer: int) -> tuple[Array, Array, Array]:
            w_ih, w_hh, b_ih, b_hh = (weights[f"{prefix}.{name}_l{layer}"]
                                      for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            return w_ih, w_hh, b_ih + b_hh

        w_ih, self._w_hh, bias = lstm("lstm", 0)
        self._w_hh = _f32(self._w_hh)
        if config.lean_inputs:  # pitch plus times_in(step s, duration s), a linear map
            times_w = weights["times_in.weight"]
            lean = {
                "pitch": embeddings["pitch"],
                "step": np.outer(np.asarray(bins.step_s, dtype=np.float32), times_w[:, 0]),
                "duration": np.outer(np.asarray(bins.duration_s, dtype=np.float32), times_w[:, 1]),
            }
            self._input = _InputGates(w_ih, bias, lean, weights["times_in.bias"])
        else:
            self._input = _InputGates(w_ih, bias, embeddings)
        upper = [lstm("lstm", layer) for layer in range(1, self.layers)]  # [x, h] through one matrix
        self._upper_w = _f32(np.stack([np.concatenate([w, u], axis=1) for w, u, _ in upper])
                             if upper else np.zeros((0, 4 * self.hidden, 2 * self.hidden)))
        self._upper_b = _f32(np.stack([b for _, _, b in upper]) if upper else np.zeros((0, 4 * self.hidden)))
        rhythm_w_ih, rhythm_w_hh, rhythm_bias = lstm("rhythm_lstm", 0)
        self._rhythm_w_hh = _f32(rhythm_w_hh)
        self._rhythm_input = _InputGates(rhythm_w_ih, rhythm_bias, embeddings)
        self._mix_w, self._mix_b = _f32(weights["rhythm_mix.weight"]), _f32(weights["rhythm_mix.bias"])
        step_cond, pitch_cond = weights["step_cond.weight"], weights["pitch_cond.weight"]
        duration_cond = weights["duration_cond.weight"]
        self._step_head = _Head(weights, "step_head", {})
        self._pitch_head = _Head(weights, "pitch_head", {"step": step_cond},
                                 "pitch_interval_out" if self.relative_pitch else None)
        self._duration_head = _Head(weights, "duration_head", {"step": step_cond, "pitch": pitch_cond})
        self._velocity_head = _Head(weights, "velocity_head", {"step": step_cond, "pitch": pitch_cond,
                                                               "duration": duration_cond})
        self._pitch_w1, self._pitch_b1 = _f32(self._pitch_head.w1), _f32(self._pitch_head.b1)
        # The rhythm heads' first layers (step, duration, velocity: they read the same input) in one product.
        rhythm_heads = (self._step_head, self._duration_head, self._velocity_head)
        self._rhythm_w1 = _f32(np.concatenate([head.w1 for head in rhythm_heads]))
        self._rhythm_b1 = _f32(np.concatenate([head.b1 for head in rhythm_heads]))
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
        main, rhythm = self._input, self._rhythm_input
        # int(): a numpy int32 would make numba compile another version, for seconds, mid-phrase.
        return kernels.feed(state, int(pitch), int(step), int(duration), int(velocity),
                            main.table, main.kinds, main.offsets, self._w_hh, self._upper_w, self._upper_b,
                            rhythm.table, rhythm.kinds, rhythm.offsets, self._rhythm_w_hh)

    def _firsts(self, state: Array) -> tuple[Array, ...]:
        """The heads' first layers on what they start from (cached for the last state): the main
        LSTM's output for pitch; for the rhythm heads, plus the rhythm LSTM's."""
        cached = self._cached
        if cached is not None and cached[0] is state:
            return cached[1]
        pitch = np.empty_like(self._pitch_b1)
        rhythm = np.empty_like(self._rhythm_b1)
        kernels.firsts(state, self._mix_w, self._mix_b, self._pitch_w1, self._pitch_b1,
                       self._rhythm_w1, self._rhythm_b1, pitch, rhythm)
        step, duration, velocity = (rhythm[part] for part in self._rhythm_slices)
        firsts = (step, pitch, duration, velocity)
        self._cached = (state, firsts)
        return firsts

    def step_logits(self, state: Array) -> Array:
        return self._step_head.logits(self._firsts(state)[0])

    def pitch_logits(self, state: Array, step: int) -> Array:
        last = self.last_pitch(state)
        relative = self.relative_pitch and last != self.start_pitch
        return self._pitch_head.logits(self._firsts(state)[1], step, last=last if relative else -1)

    def duration_logits(self, state: Array, step: int, pitch: int) -> Array:
        return self._duration_head.logits(self._firsts(state)[2], step, pitch)

    def velocity_logits(self, state: Array, step: int, pitch: int, duration: int) -> Array:
        return self._velocity_head.logits(self._firsts(state)[3], step, pitch, duration)
