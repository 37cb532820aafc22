"""The per-event arithmetic of `numpy_step.NumpyStep`, compiled once with numba.

At this model's size an event is a few matrix-vector products (about 5 MB of weights read
once) and a few hundred element-wise steps. As numpy calls the element-wise part costs more
than the products: around 150 calls of a microsecond each, every one of them slower when a
noisy host takes the cache. Compiled, a cell or a head is one call with no temporaries, and
the products run at memory speed as BLAS does.

Plain loops over float32 arrays; `fastmath` allows only reassociation and fused multiply-add
(so the dot products vectorise), not the no-NaN/no-inf assumptions: a broken model must still
give NaN logits, which the sampler refuses loudly. The GIL is held throughout (no `nogil`): on
the live engine's thread, letting it go would let the MIDI threads take it for a whole
switch interval. `cache=True` keeps the compiled code beside this file (or in numba's user
cache when that is read-only), so only the first run after an install compiles (about 10 s on a 2-core machine).
Indices are checked here (numba does not check bounds): a bad token raises IndexError, as numpy
would, instead of reading past a table.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from improv.model.model_config import INTERVAL_RANGE, N_INTERVAL_IN
from improv.music.encoding import START_PITCH

_FAST = {"reassoc", "contract"}
_SQRT_HALF = 1.0 / math.sqrt(2.0)


@njit(cache=True, fastmath=_FAST)
def _add_product(w, x, out):  # pragma: no cover - compiled
    """out += w @ x."""
    rows, cols = w.shape
    for i in range(rows):
        acc = np.float32(0.0)
        for j in range(cols):
            acc += w[i, j] * x[j]
        out[i] += acc


@njit(cache=True)
def _cell(gates, c, h_out, c_out):  # pragma: no cover - compiled
    """An LSTM cell's new h and c from its gates (torch's order: i, f, g, o).

    sigmoid(x) = 1 / (1 + e^-x) and tanh(x) = 1 - 2 / (e^2x + 1), in float32: libm's expf is
    four times faster than its tanh, and neither form overflows (e^x = inf gives the limit).
    """
    n = c.shape[0]
    one, two = np.float32(1.0), np.float32(2.0)
    for k in range(n):
        i = one / (one + math.exp(-gates[k]))
        f = one / (one + math.exp(-gates[n + k]))
        g = one - two / (math.exp(two * gates[2 * n + k]) + one)
        o = one / (one + math.exp(-gates[3 * n + k]))
        new_c = f * c[k] + i * g
        c_out[k] = new_c
        h_out[k] = o * (one - two / (math.exp(two * new_c) + one))


@njit(cache=True)
def _gather(table, kinds, offsets, tokens, out):  # pragma: no cover - compiled
    """out = the table's last row (the bias) + the rows of the tokens of `kinds`."""
    bias = table.shape[0] - 1
    out[:] = table[bias]
    for k in range(kinds.shape[0]):
        end = offsets[k + 1] if k + 1 < kinds.shape[0] else bias
        row = offsets[k] + tokens[kinds[k]]
        if not offsets[k] <= row < end:
            raise IndexError("token out of range for the model's input tables")
        out += table[row]


@njit(cache=True)
def feed(state, pitch, step, duration, velocity, table, kinds, offsets, w_hh, upper_w, upper_b,
         rhythm_table, rhythm_kinds, rhythm_offsets, rhythm_w_hh):  # pragma: no cover - compiled
    """The state after one event (bin indices; pitch 128 is the start), as a new array.

    The first layer's and the rhythm LSTM's input products are sums of precomputed table rows
    (`kinds` index the tokens, in `TOKEN_KINDS` order, `offsets` their rows); a layer above
    reads [x, h] through one matrix (`upper_w[l]`).
    """
    last = int(state[0, 0, state.shape[2] - 1])
    if pitch == START_PITCH or last == START_PITCH:
        interval = N_INTERVAL_IN - 1
    else:
        interval = min(max(pitch - last, -INTERVAL_RANGE), INTERVAL_RANGE) + INTERVAL_RANGE
    tokens = np.array((pitch, interval, step, duration, velocity))
    new = np.zeros_like(state)
    hidden = w_hh.shape[1]
    gates = np.empty(4 * hidden, dtype=np.float32)
    _gather(table, kinds, offsets, tokens, gates)
    _add_product(w_hh, state[0, 0, :hidden], gates)
    _cell(gates, state[1, 0, :hidden], new[0, 0, :hidden], new[1, 0, :hidden])
    both = np.empty(2 * hidden, dtype=np.float32)
    for layer in range(1, state.shape[1]):
        both[:hidden] = new[0, layer - 1, :hidden]
        both[hidden:] = state[0, layer, :hidden]
        gates[:] = upper_b[layer - 1]
        _add_product(upper_w[layer - 1], both, gates)
        _cell(gates, state[1, layer, :hidden], new[0, layer, :hidden], new[1, layer, :hidden])
    rhythm = rhythm_w_hh.shape[1]
    if rhythm > 0:
        end = hidden + rhythm
        rhythm_gates = np.empty(4 * rhythm, dtype=np.float32)
        _gather(rhythm_table, rhythm_kinds, rhythm_offsets, tokens, rhythm_gates)
        _add_product(rhythm_w_hh, state[0, 0, hidden:end], rhythm_gates)
        _cell(rhythm_gates, state[1, 0, hidden:end], new[0, 0, hidden:end], new[1, 0, hidden:end])
    new[:, :, new.shape[2] - 1] = pitch
    return new


@njit(cache=True)
def firsts(state, mix_w, mix_b, pitch_w1, pitch_b1, rhythm_w1, rhythm_b1, pitch_out, rhythm_out):  # pragma: no cover
    """The heads' first layers before GELU: pitch's on the main LSTM's output, the three
    rhythm heads' (stacked) on that plus the rhythm LSTM's, mixed."""
    layers, hidden = state.shape[1], pitch_w1.shape[1]
    top = state[0, layers - 1, :hidden]
    pitch_out[:] = pitch_b1
    _add_product(pitch_w1, top, pitch_out)
    rhythm = top.copy()
    if mix_w.shape[1] > 0:
        rhythm += mix_b
        _add_product(mix_w, state[0, 0, hidden : hidden + mix_w.shape[1]], rhythm)
    rhythm_out[:] = rhythm_b1
    _add_product(rhythm_w1, rhythm, rhythm_out)


@njit(cache=True)
def head(first, step_table, pitch_table, duration_table, step, pitch, duration, w2, b2,
         interval_w, interval_b, last):  # pragma: no cover - compiled
    """Logits of a head: GELU(first + the rows of the tokens it is conditioned on) @ w2.T + b2.

    A token of -1 is not a condition. With `last` >= 0 (the pitch head of a relative-pitch model)
    each pitch p also gets the interval head's score of p - last.
    """
    if not (-1 <= step < step_table.shape[0] and -1 <= pitch < pitch_table.shape[0]
            and -1 <= duration < duration_table.shape[0] and -1 <= last < w2.shape[0]):
        raise IndexError("token out of range for the model's heads")
    hidden = first.copy()
    if step >= 0:
        hidden += step_table[step]
    if pitch >= 0:
        hidden += pitch_table[pitch]
    if duration >= 0:
        hidden += duration_table[duration]
    for i in range(hidden.shape[0]):  # GELU as torch computes it: x Phi(x), with erf
        x = float(hidden[i])
        hidden[i] = 0.5 * x * (1.0 + math.erf(x * _SQRT_HALF))
    logits = b2.copy()
    _add_product(w2, hidden, logits)
    if last >= 0:
        n = logits.shape[0]
        scores = interval_b[n - 1 - last : 2 * n - 1 - last].copy()
        _add_product(interval_w[n - 1 - last : 2 * n - 1 - last], hidden, scores)
        logits += scores
    return logits


@njit(cache=True)
def draw(z, t, u, mask, masked, top_p, underflow):  # pragma: no cover - compiled
    """`sampling.choose`'s arithmetic over float64 logits `z`, with `u` its one uniform number.

    Returns (token, max z, log of the sum of e^(z - max z), entropy). The weights are exp((z - max z) / t), times the mask
    if `masked`, cut to the nucleus if `top_p` < 1, and the token is the first whose running
    sum exceeds u times the total (numpy's searchsorted, side right). NLL and entropy are of the
    model's own distribution (t = 1, no mask, no top-p). Token -2: max z is not finite (no
    arithmetic done); -1: the masked weights sum to `underflow` or less, for the caller's
    careful path (the other three are valid).
    """
    n = z.shape[0]
    top = -math.inf
    for i in range(n):
        if z[i] > top or z[i] != z[i]:
            top = z[i]
            if top != top:
                break
    if not -math.inf < top < math.inf:
        return -2, top, 0.0, 0.0
    w = np.empty(n)
    total_e = 0.0
    spread = 0.0  # sum of e * (z - top), where e > 0 (0 log 0 = 0)
    for i in range(n):
        s = z[i] - top
        e = math.exp(s)
        total_e += e
        if e > 0.0:
            spread += e * s
        if masked and not mask[i]:
            w[i] = 0.0
        elif t == 1.0:
            w[i] = e
        else:
            w[i] = math.exp(s / t)
    log_total = math.log(total_e)
    entropy = log_total - spread / total_e
    if top_p < 1.0:  # the nucleus: every weight at least as heavy as the lightest one needed
        descending = np.sort(w)[::-1]
        running = np.cumsum(descending)
        k = np.searchsorted(running, top_p * running[n - 1])
        if k < n:
            edge = descending[k]
            for i in range(n):
                if w[i] < edge:
                    w[i] = 0.0
    for i in range(1, n):
        w[i] += w[i - 1]
    total = w[n - 1]
    if masked and not total > underflow:
        return -1, top, log_total, entropy
    token = np.searchsorted(w, u * total, side="right")
    if token >= n:  # u * total rounded up to the total: the last non-zero entry
        token = np.searchsorted(w, total)
    return token, top, log_total, entropy
