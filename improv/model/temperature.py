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

