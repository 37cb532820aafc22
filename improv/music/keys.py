"""Keys, scales and pitch ranges: parsing them, the pitches they allow, and guessing a key from notes.

Pure music: a key is (root pitch class 0-11, mode name); masks are boolean arrays over the 128 MIDI
pitches, True = allowed. Values a user sets raise `ConfigError` with a one-line message.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from improv.errors import ConfigError

BoolArray = npt.NDArray[np.bool_]

N_PITCHES = 128

# Semitones above the root. Chromatic is "no key constraint" spelled as a key.
MODES: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {
        "major": (0, 2, 4, 5, 7, 9, 11),
        "minor": (0, 2, 3, 5, 7, 8, 10),
        "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
        "melodic_minor": (0, 2, 3, 5, 7, 9, 11),
        "dorian": (0, 2, 3, 5, 7, 9, 10),
        "phrygian": (0, 1, 3, 5, 7, 8, 10),
        "lydian": (0, 2, 4, 6, 7, 9, 11),
        "mixolydian": (0, 2, 4, 5, 7, 9, 10),
        "locrian": (0, 1, 3, 5, 6, 8, 10),
        "pentatonic_major": (0, 2, 4, 7, 9),
        "pentatonic_minor": (0, 3, 5, 7, 10),
        "blues": (0, 3, 5, 6, 7, 10),
        "chromatic": tuple(range(12)),
    }
)
_MODE_ALIASES = {
    "ionian": "major",
    "aeolian": "minor",
    "natural_minor": "minor",
    "major_pentatonic": "pentatonic_major",
    "minor_pentatonic": "pentatonic_minor",
}
_LETTERS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_ACCIDENTALS = {"": 0, "#": 1, "♯": 1, "b": -1, "♭": -1}
_SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_KEY_RE = re.compile(r"\s*([a-g])([#♯b♭]?)\s*:\s*([a-z_ -]+?)\s*")
_RANGE_RE = re.compile(r"\s*(\d+)\s*-\s*(\d+)\s*")

# Krumhansl-Kessler key profiles: how well each pitch class above the tonic fits a key.
_MAJOR_PROFILE = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
_MINOR_PROFILE = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
MIN_KEY_WEIGHT_S = 0.1  # a very short note still counts this much


def check_int(value: object, name: str, lo: int, hi: int) -> int:
    """`value` as an int if it is an integer lo..hi (bools are not), else ConfigError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= int(value) <= hi:
        raise ConfigError(f"{name} must be an integer {lo}-{hi}, got {value!r}")
    return int(value)


def _canonical_mode(mode: str) -> str | None:
    name = re.sub(r"[ -]+", "_", mode.strip().lower())
    name = _MODE_ALIASES.get(name, name)
    return name if name in MODES else None


def _mode_list() -> str:
    return ", ".join(MODES)


def range_mask(lo: int, hi: int, n: int = N_PITCHES) -> BoolArray:
    """Allow pitches lo..hi inclusive (MIDI numbers) out of `n`."""
    lo = check_int(lo, "lowest pitch", 0, n - 1)
    hi = check_int(hi, "highest pitch", lo, n - 1)
    mask = np.zeros(n, dtype=np.bool_)
    mask[lo : hi + 1] = True
    return mask


def scale_mask(root: int, mode: str, n_pitches: int = N_PITCHES) -> BoolArray:
    """Allow the pitches whose pitch class is in `mode` built on `root` (0 = C)."""
    root = check_int(root, "key root pitch class", 0, 11)
    name = _canonical_mode(mode) if isinstance(mode, str) else None
    if name is None:
        raise ConfigError(f"unknown mode {mode!r}; valid modes: {_mode_list()}")
    in_scale = np.zeros(12, dtype=np.bool_)
    in_scale[[(root + step) % 12 for step in MODES[name]]] = True
    return in_scale[np.arange(n_pitches) % 12]


def pitch_mask(lo: int, hi: int, root: int | None = None, mode: str | None = None) -> BoolArray:
    """Range and (optionally) key together; raise ConfigError if they leave no pitch.

    Meant for set-up time, so a contradiction is reported to the player
    instead of being silently dropped by the sampler's fallback.
    """
    mask = range_mask(lo, hi)
    if root is not None or mode is not None:
        if root is None or mode is None:
            raise ConfigError("a key needs both a root and a mode, e.g. 'C:minor'")
        mask &= scale_mask(root, mode)
        if not mask.any():
            raise ConfigError(f"pitch range {lo}-{hi} holds no note of {format_key(root, mode)}; widen the range")
    return mask


def parse_key(text: str) -> tuple[int, str]:
    """'C:minor', 'F#:major', 'Bb:dorian' (any case) -> (root pitch class, canonical mode)."""
    match = _KEY_RE.fullmatch(text.lower()) if isinstance(text, str) else None
    mode = _canonical_mode(match.group(3)) if match else None
    if match is None or mode is None:
        raise ConfigError(f"bad key {text!r}: use ROOT:MODE like 'C:minor' or 'F#:dorian'; modes: {_mode_list()}")
    root = (_LETTERS[match.group(1)] + _ACCIDENTALS[match.group(2)]) % 12
    return root, mode


def format_key(root: int, mode: str) -> str:
    """Inverse of `parse_key`, spelling roots with sharps: (1, 'major') -> 'C#:major'."""
    root = check_int(root, "key root pitch class", 0, 11)
    name = _canonical_mode(mode)
    if name is None:
        raise ConfigError(f"unknown mode {mode!r}; valid modes: {_mode_list()}")
    return f"{_SHARP_NAMES[root]}:{name}"


def parse_range(text: str) -> tuple[int, int]:
    """'36-96' -> (36, 96): MIDI pitches 0-127, low <= high, both inclusive."""
    match = _RANGE_RE.fullmatch(text) if isinstance(text, str) else None
    if match is not None:
        lo, hi = int(match.group(1)), int(match.group(2))
        if lo <= hi <= 127:
            return lo, hi
    raise ConfigError(f"bad pitch range {text!r}: use LOW-HIGH with MIDI pitches 0-127 and LOW <= HIGH, e.g. '36-96'")


def estimate_key(notes: Iterable[tuple[int, float]]) -> tuple[int, str] | None:
    """The major or minor key that best fits (pitch, duration in s) notes, as (root pitch class, mode).

    Krumhansl-Schmuckler: correlate the duration-weighted pitch-class histogram
    with each of the 24 rotated key profiles. None when there are no notes or
    all pitch classes weigh the same (no key to prefer).
    """
    histogram = np.zeros(12)
    for pitch, duration in notes:
        histogram[pitch % 12] += max(duration, MIN_KEY_WEIGHT_S)
    if not histogram.any() or np.all(histogram == histogram[0]):
        return None
    best: tuple[float, int, str] | None = None
    for mode, profile in (("major", _MAJOR_PROFILE), ("minor", _MINOR_PROFILE)):
        for root in range(12):
            score = float(np.corrcoef(histogram, np.roll(profile, root))[0, 1])
            if best is None or score > best[0]:
                best = (score, root, mode)
    assert best is not None
    return best[1], best[2]
