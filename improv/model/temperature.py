"""The one rule for a temperature that a person sets: a number from 0.1 to 3.0.

The command line, the config file, the knob (CC) and the arrow keys all pass through here. Why these
ends: at 0.1 every head is already all but its argmax (the answer repeats the likeliest pattern; lower
changes nothing a player hears), and at 3.0 every head is close to uniform noise. The knob's default
maps CC 0 -> 0.1, 64 -> 1.0 (the model as trained), 127 -> 3.0, so the knob spans exactly this range.
Typed values outside it are refused with a one-line error; relative moves (keys) stop at its ends.
Sampling's own arithmetic (`sampling.py`) works for any T > 0; this range is about people, not maths.
"""

from __future__ import annotations

import math
import numbers

from improv.errors import ConfigError

TEMPERATURE_MIN = 0.1
TEMPERATURE_MAX = 3.0
TEMPERATURE_DEFAULT = 1.0
TEMPERATURE_STEP = 0.05  # one press of an arrow key


def check_temperature(value: object, name: str = "temperature") -> float:
    """`value` as a float if it is a number within 0.1-3.0, else a ConfigError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
        raise ConfigError(f"{name} must be a number from {TEMPERATURE_MIN} to {TEMPERATURE_MAX}, got {value!r}")
    t = float(value)
    if not TEMPERATURE_MIN <= t <= TEMPERATURE_MAX:
        raise ConfigError(f"{name} must be from {TEMPERATURE_MIN} to {TEMPERATURE_MAX}, got {value!r}")
    return t


def clamp_temperature(value: float) -> float:
    """`value` held to 0.1-3.0: for moves relative to the current temperature, which stop at the ends."""
    return min(max(float(value), TEMPERATURE_MIN), TEMPERATURE_MAX)


def nudge_temperature(current: float, delta: float) -> float:
    """An arrow key's move: `current + delta`, rounded to hundredths, held to the range."""
    return clamp_temperature(round(current + delta, 2))


# -- the knob: CC 0-127 <-> temperature ------------------------------------------------

CC_MAX = 127
CC_MID = 64


def real(value: object, name: str) -> float:
    """`value` as a float if it is a real number (bools are not), else ConfigError."""
    if type(value) is float:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    return float(value)


def _check_cc_bounds(lo: float, mid: float, hi: float) -> tuple[float, float, float]:
    values = (real(lo, "lowest temperature"), real(mid, "middle temperature"), real(hi, "highest temperature"))
    if not 0.0 < values[0] < values[1] < values[2] < math.inf:
        raise ConfigError(f"temperature knob needs finite 0 < lo < mid < hi, got lo={lo!r} mid={mid!r} hi={hi!r}")
    return values


def temperature_from_cc(value: float, lo: float = 0.1, mid: float = 1.0, hi: float = 3.0) -> float:
    """CC 0..127 -> temperature, log-linear in two pieces: 0 -> lo, 64 -> mid, 127 -> hi.

    Log scale because the ear hears ratios of temperature; two pieces so the
    knob's centre is the model's own distribution (T = mid).
    """
    lo, mid, hi = _check_cc_bounds(lo, mid, hi)
    v = real(value, "CC value")
    if not 0.0 <= v <= CC_MAX:
        raise ConfigError(f"CC value must be 0-{CC_MAX}, got {value!r}")
    if v == CC_MAX:  # exact endpoint, whatever the rounding of the power below
        return hi
    if v < CC_MID:
        return lo * math.pow(mid / lo, v / CC_MID)
    return mid * math.pow(hi / mid, (v - CC_MID) / (CC_MAX - CC_MID))


def cc_from_temperature(temperature: float, lo: float = 0.1, mid: float = 1.0, hi: float = 3.0) -> int:
    """Inverse of `temperature_from_cc`, rounded to the nearest CC value 0..127.

    Raises ConfigError for a temperature outside [lo, hi]: the knob cannot
    show it, and the caller should decide whether to clamp.
    """
    lo, mid, hi = _check_cc_bounds(lo, mid, hi)
    t = real(temperature, "temperature")
    if not lo <= t <= hi:
        raise ConfigError(f"temperature {temperature!r} is outside the knob's range {lo}-{hi}")
    if t < mid:
        v = CC_MID * math.log(t / lo) / math.log(mid / lo)
    else:
        v = CC_MID + (CC_MAX - CC_MID) * math.log(t / mid) / math.log(hi / mid)
    return min(CC_MAX, max(0, round(v)))
