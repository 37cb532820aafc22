"""Event <-> token bins: every head of the model is categorical.

Step and duration are binned on a log scale (bin 0 is "no time": chord tones
for the step, a staccato blip for the duration), so a temperature knob shapes
rhythm as well as pitch. The bins are data, saved inside every model file, so
a model always decodes with the bins it was trained on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from improv.music.events import Event

N_PITCH = 128
START_PITCH = N_PITCH  # input-only token: "nothing played yet"


def log_bins(n: int, lo_s: float, hi_s: float) -> tuple[float, ...]:
    """`n` bin centres: 0.0, then n-1 log-spaced values from lo_s to hi_s."""
    ratio = (hi_s / lo_s) ** (1.0 / (n - 2))
    return (0.0,) + tuple(round(lo_s * ratio**i, 6) for i in range(n - 1))


@dataclass(frozen=True)
class Bins:
    """The quantisation shared by training, the model file and the live engine."""

    step_s: tuple[float, ...] = field(default_factory=lambda: log_bins(32, 0.01, 4.0))
    duration_s: tuple[float, ...] = field(default_factory=lambda: log_bins(32, 0.01, 6.0))
    velocity_width: int = 8

    @property
    def n_step(self) -> int:
        return len(self.step_s)

    @property
    def n_duration(self) -> int:
        return len(self.duration_s)

    @property
    def n_velocity(self) -> int:
        return math.ceil(127 / self.velocity_width)

    def to_dict(self) -> dict:
        return {"step_s": list(self.step_s), "duration_s": list(self.duration_s), "velocity_width": self.velocity_width}

    @classmethod
    def from_dict(cls, data: dict) -> Bins:
        return cls(tuple(data["step_s"]), tuple(data["duration_s"]), int(data["velocity_width"]))

    # Encoding: nearest centre on a log axis; anything under half the first
    # non-zero centre is bin 0.
    def step_bin(self, seconds: float) -> int:
        return _nearest_log_bin(self.step_s, seconds)

    def duration_bin(self, seconds: float) -> int:
        return _nearest_log_bin(self.duration_s, seconds)

    def velocity_bin(self, velocity: int) -> int:
        return min(max(velocity - 1, 0) // self.velocity_width, self.n_velocity - 1)

    def velocity_value(self, index: int) -> int:
        return min(1 + index * self.velocity_width + self.velocity_width // 2, 127)

    def encode(self, event: Event) -> tuple[int, int, int, int]:
        return (event.pitch, self.step_bin(event.step), self.duration_bin(event.duration), self.velocity_bin(event.velocity))

    def decode(self, pitch: int, step: int, duration: int, velocity: int) -> Event:
        return Event(pitch, self.step_s[step], self.duration_s[duration], self.velocity_value(velocity))

    def encode_arrays(self, steps: np.ndarray, durations: np.ndarray, velocities: np.ndarray) -> tuple[np.ndarray, ...]:
        """Vectorised `encode` for training batches (seconds arrays, velocity ints)."""
        return (
            _nearest_log_bins(np.asarray(self.step_s), steps),
            _nearest_log_bins(np.asarray(self.duration_s), durations),
            np.minimum(np.maximum(velocities - 1, 0) // self.velocity_width, self.n_velocity - 1),
        )


def _nearest_log_bin(centres: Sequence[float], seconds: float) -> int:
    if seconds < centres[1] / 2:
        return 0
    log_t = math.log(seconds)
    best, best_d = 1, abs(math.log(centres[1]) - log_t)
    for i in range(2, len(centres)):
        d = abs(math.log(centres[i]) - log_t)
        if d >= best_d:
            break
        best, best_d = i, d
    return best


def _nearest_log_bins(centres: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    logs = np.log(centres[1:])
    edges = (logs[1:] + logs[:-1]) / 2  # midpoints on the log axis
    safe = np.log(np.maximum(seconds, 1e-9))
    index = np.searchsorted(edges, safe) + 1
    return np.where(seconds < centres[1] / 2, 0, index).astype(np.int64)
