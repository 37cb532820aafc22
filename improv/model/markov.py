"""Pitch as Markov models: intervals (a tune transposed is the same tune) and absolute pitch, mixed.

`IntervalMarkov` models pitch as intervals to the previous pitch and maps back to the 128
pitches; `PitchMarkov` mixes it with an absolute-pitch model, which knows keys and registers.
Offline helpers at the end fit them on event sequences. Both are built on `kneser_ney.MarkovModel`
(re-exported here, with `BOS`, for the evaluation baselines and tests that import them from here).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from improv.model.kneser_ney import BOS, MarkovModel, fit_sequences

__all__ = ["BOS", "IntervalMarkov", "MarkovModel", "PitchMarkov", "best_weight", "component_probabilities",
           "fit_pitch_markov"]

N_PITCH = 128
MAX_INTERVAL = N_PITCH - 1


class IntervalMarkov:
    """Pitch as the interval to the previous pitch: transposition-invariant.

    The first pitch of a sequence, which has no interval, comes from the
    pitch counts (order 0). Intervals that would leave 0-127 get no mass.
    """

    def __init__(self, order: int = 8) -> None:
        self.intervals = MarkovModel(2 * MAX_INTERVAL + 1, order)
        self.first = MarkovModel(N_PITCH, 0)
        self._previous: int | None = None

    @property
    def order(self) -> int:
        return self.intervals.order

    def observe(self, pitch: int) -> None:
        if self._previous is None:
            self.first.observe(pitch)
        else:
            self.intervals.observe(pitch - self._previous + MAX_INTERVAL)
        self._previous = pitch

    def fit(self, sequences: Iterable[Sequence[int]]) -> IntervalMarkov:
        """Observe each sequence from a fresh history; counts accumulate."""
        fit_sequences(self, sequences)
        return self

    def reset_history(self) -> None:
        self.intervals.reset_history()
        self._previous = None

    def _state(self, context: Sequence[int] | None) -> tuple[int | None, list[int] | None]:
        if context is None:
            return self._previous, None
        pitches = [int(p) for p in context[-(self.order + 1) :]]  # enough for `order` intervals
        steps = [b - a + MAX_INTERVAL for a, b in zip(pitches, pitches[1:])]
        return (pitches[-1] if pitches else None), steps

    def distribution(self, context: Sequence[int] | None = None) -> np.ndarray:
        """P(next pitch) over 0-127; `context` is the pitches since the sequence start."""
        previous, steps = self._state(context)
        if previous is None:
            return self.first.distribution(())
        p = self.intervals.distribution(steps)[MAX_INTERVAL - previous : MAX_INTERVAL - previous + N_PITCH]
        return p / p.sum()

    def matched_order(self, context: Sequence[int] | None = None) -> int:
        previous, steps = self._state(context)
        if previous is None:
            return -1 if self.first.tokens_seen == 0 else 0
        return self.intervals.matched_order(steps)

    def nll(self, pitches: Iterable[int]) -> float:
        """Summed NLL (nats) of `pitches` as a new sequence; the model is unchanged."""
        total = 0.0
        context: list[int] = []
        for pitch in pitches:
            total -= math.log(self.distribution(context)[int(pitch)])
            context.append(int(pitch))
        return total


class PitchMarkov:
    """A mixture of an absolute-pitch model and an interval model.

    The absolute model knows keys and registers, the interval model knows
    melodic shapes in any key. The absolute model's share depends on how
    long a context the interval model recognises (`weights[m + 1]` for a
    matched order m of -1..interval order): where the interval model has
    seen a long context it is trusted more.
    """

    def __init__(self, absolute_order: int = 6, interval_order: int = 8, weights: float | Sequence[float] = 0.3) -> None:
        self.absolute = MarkovModel(N_PITCH, absolute_order)
        self.interval = IntervalMarkov(interval_order)
        self.weights = weights  # type: ignore[assignment]  # the setter validates and expands

    @property
    def weights(self) -> tuple[float, ...]:
        return self._weights

    @weights.setter
    def weights(self, value: float | Sequence[float]) -> None:
        n = self.interval.order + 2
        values = (float(value),) * n if isinstance(value, (int, float)) else tuple(float(v) for v in value)
        if len(values) != n:
            raise ValueError(f"weights needs {n} values (interval matched order -1..{n - 2}), got {len(values)}")
        if not all(0.0 <= v <= 1.0 for v in values):
            raise ValueError(f"weights must be in [0, 1], got {values}")
        self._weights = values

    def weight(self, context: Sequence[int] | None = None) -> float:
        """The absolute model's share for this context."""
        return self._weights[self.interval.matched_order(context) + 1]

    def observe(self, pitch: int) -> None:
        self.absolute.observe(pitch)
        self.interval.observe(pitch)

    def fit(self, sequences: Iterable[Sequence[int]]) -> PitchMarkov:
        """Observe each sequence from a fresh history; counts accumulate."""
        fit_sequences(self, sequences)
        return self

    def reset_history(self) -> None:
        self.absolute.reset_history()
        self.interval.reset_history()

    def distribution(self, context: Sequence[int] | None = None) -> np.ndarray:
        """P(next pitch) over 0-127; `context` is the pitches since the sequence start (None: own history)."""
        w = self.weight(context)
        return w * self.absolute.distribution(context) + (1 - w) * self.interval.distribution(context)

    def matched_order(self, context: Sequence[int] | None = None) -> int:
        """The longer of the two models' matched contexts (in notes of context)."""
        return max(self.absolute.matched_order(context), self.interval.matched_order(context))

    def nll(self, pitches: Iterable[int]) -> float:
        """Summed NLL (nats) of `pitches` as a new sequence; the model is unchanged."""
        total = 0.0
        context: list[int] = []
        for pitch in pitches:
            pitch = int(pitch)
            w = self.weight(context)
            p = w * self.absolute.probability(pitch, context) + (1 - w) * self.interval.distribution(context)[pitch]
            total -= math.log(p)
            context.append(pitch)
        return total


# ------------------------------------------------------------------ offline


def component_probabilities(model: PitchMarkov, sequences: Iterable[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """P(actual pitch) under the absolute and the interval model as (n, 2), and the
    interval model's matched order per pitch: what choosing the weights needs."""
    rows: list[tuple[float, float]] = []
    matched: list[int] = []
    for sequence in sequences:
        context: list[int] = []
        for pitch in sequence:
            pitch = int(pitch)
            rows.append(
                (model.absolute.probability(pitch, context), float(model.interval.distribution(context)[pitch]))
            )
            matched.append(model.interval.matched_order(context))
            context.append(pitch)
    return np.array(rows, dtype=np.float64).reshape(-1, 2), np.array(matched, dtype=np.int64)


def best_weight(probabilities: np.ndarray, grid: int = 99) -> float:
    """The first column's share that maximises the mixture's likelihood of the (n, 2) rows."""
    weights = np.linspace(0.0, 1.0, grid + 2)[1:-1]
    losses = [-np.log(w * probabilities[:, 0] + (1 - w) * probabilities[:, 1]).sum() for w in weights]
    return float(weights[int(np.argmin(losses))])


def fit_pitch_markov(
    sequences: Sequence[Sequence[int]],
    absolute_order: int = 6,
    interval_order: int = 8,
    tune_every: int = 10,
    min_rows: int = 200,
) -> PitchMarkov:
    """Fit both pitch models and their weights.

    The weights are chosen on every `tune_every`-th sequence, held out while
    choosing (one weight per interval matched order with at least `min_rows`
    pitches, the overall best elsewhere); then those sequences are counted too.
    """
    tune = [s for i, s in enumerate(sequences) if i % tune_every == tune_every - 1]
    rest = [s for i, s in enumerate(sequences) if i % tune_every != tune_every - 1]
    model = PitchMarkov(absolute_order, interval_order)
    model.fit(rest)
    if tune and rest:
        probabilities, matched = component_probabilities(model, tune)
        overall = best_weight(probabilities)
        weights = []
        for m in range(-1, interval_order + 1):
            rows = probabilities[matched == m]
            weights.append(best_weight(rows) if len(rows) >= min_rows else overall)
        model.weights = weights
    model.fit(tune)  # counts add up: now the model has seen every sequence
    return model
