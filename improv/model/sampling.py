"""From a model head's logits to one token: temperature, constraints, top-p, draw.

Pure functions on 1-D numpy arrays (float64 or float32 logits), called after
every model step in the live path and offline. `choose` and `sample`, four
times per live event, are one compiled call (`kernels.draw`) after their
arguments are checked; `probabilities` and the rest are plain numpy, and the
tests hold the two to the same distribution.

The steps, in the order `sample` and `probabilities` apply them:

1. mask: constraints (pitch range, key, polyphony) are boolean arrays, True =
   allowed; masked-out entries get a logit of -inf. If a mask would leave no
   allowed entry with a finite logit, the mask is ignored and the unmasked
   logits are used: a dead end must never stop the instrument mid-phrase.
   Contradictory constraints are caught earlier, where they are set up
   (`pitch_mask` raises).
2. temperature: p_i = exp(z_i / T) / sum_k exp(z_k / T), computed as
   exp((z_i - max z) / T) so no value overflows; T -> 0 gives the argmax
   (ties share), large T gives uniform over the allowed entries.
3. top-p (nucleus): keep the most probable entries whose mass reaches p,
   always at least one; entries tied with the last kept one are kept too.
4. draw: one uniform number from the `numpy.random.Generator` per draw, so a
   seeded generator replays exactly.

This is the only sampling code: the live step (`improv.model.rolling_seed`),
`improv generate` and evaluation all draw through `choose`; model files carry
weights, not a sampler. Keys, scales and ranges live in `improv.music.keys`,
the polyphony mask in `improv.model.constraints`; their names are re-exported
here for the callers that import them from this module.

Results are float64 whatever the input dtype. Logits must be finite or -inf;
NaN, +inf or all -inf logits raise `ValueError` (a broken model should be
loud). Values a user sets (temperature, top-p, key, range, CC bounds) raise
`ConfigError`, a `ValueError`, with a one-line message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from improv.errors import ConfigError
from improv.model import kernels
from improv.model.constraints import polyphony_mask
from improv.model.temperature import cc_from_temperature, real as _real, temperature_from_cc  # the knob: re-exported
from improv.music.keys import MODES, format_key, parse_key, parse_range, pitch_mask, range_mask, scale_mask

__all__ = [
    "MODES",
    "HeadTemperatures",
    "apply_mask",
    "cc_from_temperature",
    "positive_temperature",
    "check_top_p",
    "choose",
    "draw",
    "entropy",
    "format_key",
    "log_softmax",
    "parse_key",
    "parse_range",
    "pitch_mask",
    "polyphony_mask",
    "probabilities",
    "range_mask",
    "sample",
    "scale_mask",
    "surprisal",
    "temperature_from_cc",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


_max = np.maximum.reduce  # ndarray.max() goes through a Python wrapper first

# Below this temperature (z - max) / T may overflow to -inf; the result is
# right but numpy would warn, so that rare case runs under np.errstate.
_TINY_TEMPERATURE = 1e-200


# -- validation --------------------------------------------------------------


def positive_temperature(temperature: object) -> float:
    """Return `temperature` as a float; raise ConfigError unless it is finite and > 0.

    The arithmetic's own precondition. What a person may set (0.1-3.0) is `temperature.check_temperature`.
    """
    t = _real(temperature, "temperature")
    if not 0.0 < t < math.inf:
        raise ConfigError(f"temperature must be a finite number > 0, got {temperature!r}")
    return t


def check_top_p(top_p: object) -> float:
    """Return `top_p` as a float; raise ConfigError unless 0 < top_p <= 1."""
    p = _real(top_p, "top-p")
    if not 0.0 < p <= 1.0:
        raise ConfigError(f"top-p must be in (0, 1], got {top_p!r}")
    return p


def _as_logits(logits: npt.ArrayLike) -> FloatArray:
    z = np.asarray(logits, dtype=np.float64)  # no copy for float64 input
    if z.ndim != 1 or z.size == 0:
        raise ValueError(f"logits must be a non-empty 1-D array, got shape {z.shape}")
    return z if z.flags.c_contiguous else z.copy()  # one layout: the compiled draw never compiles again


def _as_mask(mask: npt.ArrayLike, size: int) -> BoolArray:
    m = np.asarray(mask, dtype=np.bool_)
    if m.shape != (size,):
        raise ValueError(f"mask must have shape ({size},) like the logits, got {m.shape}")
    if not m.flags.c_contiguous:
        m = m.copy()
    return m


# -- distributions -----------------------------------------------------------


def apply_mask(logits: npt.ArrayLike, mask: npt.ArrayLike | None) -> FloatArray:
    """Logits with masked-out entries (mask False) set to -inf, as a new float64 array.

    If nothing finite would survive, returns the unmasked logits instead (see
    the module docstring): the live path must always have something to play.
    """
    z = _as_logits(logits)
    if mask is None:
        return z.copy()
    masked = np.where(_as_mask(mask, z.size), z, -np.inf)
    if masked.max() == -np.inf:
        return z.copy()
    return masked


def _scaled(logits: npt.ArrayLike, temperature: float, mask: npt.ArrayLike | None) -> FloatArray:
    """(z - max z) / T over the allowed entries, as a new array (max entry 0, rest <= 0)."""
    t = positive_temperature(temperature)
    z = _as_logits(logits)
    w: FloatArray = z if mask is None else np.where(_as_mask(mask, z.size), z, -np.inf)
    if w is not z and _max(w) == -math.inf:  # mask leaves nothing: fall back to the unmasked logits
        w = z
    w = _shift(w)
    return _over(w, t, out=w)


def _not_logits(top: float) -> ValueError:
    """The error for logits whose maximum is `top`: NaN anywhere, +inf, or all -inf."""
    return ValueError(f"logits must be finite or -inf with at least one finite entry, max is {top}")


def _shift(z: FloatArray) -> FloatArray:
    """z - max z, as a new array; raise unless the logits are finite or -inf, one at least finite."""
    top = _max(z)
    if not -math.inf < top < math.inf:  # NaN anywhere, +inf, or all -inf
        raise _not_logits(top)
    return z - top


def _over(w: FloatArray, t: float, out: FloatArray | None = None) -> FloatArray:
    """w / t, into `out` or a new array; at a tiny t it may overflow to -inf, which is right: no warning."""
    if t < _TINY_TEMPERATURE:
        with np.errstate(over="ignore"):
            return np.divide(w, t, out=out)
    return np.divide(w, t, out=out)


def _weights(logits: npt.ArrayLike, temperature: float, top_p: float | None, mask: npt.ArrayLike | None) -> FloatArray:
    """Unnormalized probabilities after mask, temperature and top-p; the largest is exactly 1."""
    if top_p is not None:
        top_p = check_top_p(top_p)
    w = _scaled(logits, temperature, mask)
    np.exp(w, out=w)
    if top_p is not None and top_p < 1.0:
        _keep_nucleus(w, top_p)
    return w


def _keep_nucleus(weights: FloatArray, top_p: float) -> None:
    """Zero, in place, every weight outside the nucleus of mass `top_p`.

    Sorting the values (not indices) is enough: the nucleus is every entry at
    least as heavy as the lightest one needed to reach the mass, so ties at
    the edge are all kept and the kept mass is >= top_p.
    """
    descending = np.sort(weights)[::-1]
    cumulative = np.add.accumulate(descending)
    k = int(cumulative.searchsorted(top_p * cumulative[-1]))  # first index reaching the mass
    if k < weights.size:
        weights[weights < descending[k]] = 0.0


def probabilities(
    logits: npt.ArrayLike,
    temperature: float,
    top_p: float | None = None,
    mask: npt.ArrayLike | None = None,
) -> FloatArray:
    """The distribution `sample` draws from: mask, temperature, then top-p; sums to 1."""
    w = _weights(logits, temperature, top_p, mask)
    w /= w.sum()
    return w


def log_softmax(logits: npt.ArrayLike, temperature: float = 1.0) -> FloatArray:
    """log p_i at `temperature`, via log-sum-exp; -inf logits stay -inf."""
    w = _scaled(logits, temperature, None)
    w -= math.log(np.exp(w).sum())
    return w


def entropy(probs: npt.ArrayLike) -> float:
    """Shannon entropy in nats (0 log 0 = 0): how open the model's choice was."""
    p = np.asarray(probs, dtype=np.float64)
    p = p[p > 0]
    return float(-np.dot(p, np.log(p)))


def surprisal(probs: npt.ArrayLike, token: int) -> float:
    """-log p[token] in nats: how unexpected the chosen token was (inf if p = 0)."""
    p = float(np.asarray(probs, dtype=np.float64)[token])
    return math.inf if p <= 0.0 else -math.log(p)


# -- drawing -----------------------------------------------------------------


def _search(cumulative: FloatArray, u: float) -> int:
    """Inverse-CDF draw from running sums of non-negative weights, with `u` uniform in [0, 1)."""
    total = cumulative[-1]
    if not 0.0 < total < math.inf:
        raise ValueError(f"probabilities must be non-negative with a finite positive sum, got sum {total}")
    # side="right" skips zero-weight entries sitting on a boundary.
    i = int(cumulative.searchsorted(u * total, side="right"))
    if i >= cumulative.size:  # u * total rounded up to total: take the last non-zero entry
        i = int(cumulative.searchsorted(total))
    return i


def draw(probs: npt.ArrayLike, rng: np.random.Generator) -> int:
    """Index drawn in proportion to non-negative `probs` (need not sum to 1).

    For callers that want the distribution too (entropy, surprisal): one
    `rng.random()` per draw, so a seeded generator replays the same tokens;
    zero-weight entries are never drawn.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"probabilities must be a non-empty 1-D array, got shape {p.shape}")
    return _search(np.add.accumulate(p), rng.random())


def sample(
    logits: npt.ArrayLike,
    temperature: float,
    rng: np.random.Generator,
    top_p: float | None = None,
    mask: npt.ArrayLike | None = None,
) -> int:
    """One token drawn from `probabilities(logits, temperature, top_p, mask)`.

    Skips the normalization, so it can differ from `draw(probabilities(...))`
    only when the uniform lands within rounding error of a boundary.
    """
    return choose(logits, temperature, rng, top_p, mask)[0]


# Below this sum, masked weights scaled against the overall maximum may have lost allowed entries
# to underflow: `choose` then rescales against the allowed maximum (`_weights`).
_UNDERFLOW = 1e-200
_NO_MASK = np.ones(1, dtype=np.bool_)


def choose(
    logits: npt.ArrayLike,
    temperature: float,
    rng: np.random.Generator,
    top_p: float | None = None,
    mask: npt.ArrayLike | None = None,
) -> tuple[int, float, float]:
    """One head's draw for the rolling seed: the token `sample` gives, its NLL and the head's entropy.

    NLL and entropy are of the model's own distribution (T = 1, no mask, no top-p), in nats: how
    surprising the choice was to the model, whatever the knob says. The arithmetic is one compiled
    call (`kernels.draw`: it runs four times per live event); where a mask leaves (next to)
    nothing, `_weights` redoes the draw with the same uniform number.
    """
    t = positive_temperature(temperature)
    p = 1.0 if top_p is None else check_top_p(top_p)
    z = _as_logits(logits)
    m = _NO_MASK if mask is None else _as_mask(mask, z.size)
    u = rng.random()
    token, top, log_total, entropy = kernels.draw(z, t, u, m, mask is not None, p, _UNDERFLOW)
    if token == -2:  # NaN anywhere, +inf, or all -inf
        raise _not_logits(top)
    if token == -1:
        w = _weights(z, t, top_p, m)
        token = _search(np.add.accumulate(w, out=w), u)
    return int(token), log_total - float(z[token] - top), entropy


@dataclass(frozen=True, slots=True)
class HeadTemperatures:
    """One temperature for every head, unless a head has its own scale factor.

    A player turns one knob (`base`); `scales`, e.g. {"velocity": 0.5}, keeps
    some heads tamer than others without a knob each.
    """

    base: float = 1.0
    scales: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        positive_temperature(self.base)
        for head, scale in self.scales.items():
            s = _real(scale, f"temperature scale for head {head!r}")
            if not (0.0 < s < math.inf and 0.0 < self.base * s < math.inf):
                raise ConfigError(
                    f"temperature scale for head {head!r} must be a finite number > 0"
                    f" whose product with the base temperature is too, got {scale!r}"
                )
        object.__setattr__(self, "scales", MappingProxyType(dict(self.scales)))

    def for_head(self, head: str) -> float:
        """The temperature to sample `head` with: base times its scale (1 if none).

        Checked on construction, so this never raises in the live path.
        """
        return self.base * self.scales.get(head, 1.0)
