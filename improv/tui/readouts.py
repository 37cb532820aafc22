"""Numbers and small pictures for the screen, as plain functions of what the engine reported."""

from __future__ import annotations

import math
import statistics
from collections import deque

from improv.model import sampling
from improv.controls.actions import Source

KEEP_REPLIES = 200  # latency statistics cover this many recent answers


class LatencyStats:
    """Reply latencies (ms) of the recent answers: last, median, p99 (nearest rank)."""

    def __init__(self, keep: int = KEEP_REPLIES) -> None:
        self._values: deque[float] = deque(maxlen=keep)

    def add(self, latency_ms: float) -> None:
        if math.isfinite(latency_ms):
            self._values.append(latency_ms)

    def __len__(self) -> int:
        return len(self._values)

    @property
    def last(self) -> float | None:
        return self._values[-1] if self._values else None

    @property
    def median(self) -> float | None:
        return statistics.median(self._values) if self._values else None

    @property
    def p99(self) -> float | None:
        if not self._values:
            return None
        ordered = sorted(self._values)
        return ordered[max(math.ceil(0.99 * len(ordered)) - 1, 0)]


def number(value: float | None, digits: int = 1) -> str:
    """A reading, or '-' when there is none yet."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def gauge(fraction: float, width: int) -> str:
    """A bar `width` cells wide, filled to `fraction` (0-1) with eighth-cell steps; readable without colour."""
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    partial = "▏▎▍▌▋▊▉"[part - 1] if part and full < width else ""
    return ("█" * full + partial).ljust(width, "·")


def temperature_fraction(temperature: float, bounds: tuple[float, float, float]) -> float:
    """Where the temperature knob would sit for `temperature` (0 = fully down, 1 = fully up)."""
    lo, mid, hi = bounds
    clamped = min(max(temperature, lo), hi)
    return sampling.cc_from_temperature(clamped, lo, mid, hi) / 127


def source_name(source: Source | None) -> str:
    """A mapped control as the screen writes it: 'CC1', 'CC74 ch2', 'note 60', or 'no control'."""
    if source is None:
        return "no control"
    name = f"CC{source.number}" if source.kind == "cc" else f"note {source.number}"
    return name if source.channel is None else f"{name} ch{source.channel + 1}"


def key_text(key: tuple[int, str] | None) -> str:
    return "key free" if key is None else f"key {sampling.format_key(*key)} (locked)"
