"""Variable-order Markov models: the continuator's way of learning a style.

`MarkovModel` predicts the next integer token from up to `order` previous
ones with interpolated modified Kneser-Ney smoothing (Chen & Goodman 1998):
every order contributes, long contexts where they have been seen, shorter
ones for the rest, down to a uniform floor, so every token keeps a non-zero
probability. It learns incrementally: `observe(token)` appends to its own
history and updates the counts in a few microseconds, so the same class
serves as an evaluation baseline (fitted on a corpus) and live, as a style
memory that grows with every note the player plays.

Counts live in one dict per order, keyed by context tuples. The top order
holds raw counts; lower orders hold continuation counts (in how many
distinct one-longer contexts the token followed), which only change when a
longer n-gram is new, so an update usually stops after one or two orders.
Sequences start with `BOS` padding, and contexts that begin with it keep raw
counts at every order (nothing can precede the start).

`IntervalMarkov` models pitch as intervals to the previous pitch (a tune
transposed is the same tune) and maps back to the 128 pitches;
`PitchMarkov` mixes it with an absolute-pitch model, which knows keys and
registers. Offline helpers at the end fit them on event sequences.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

BOS = -1  # padding before the first token of a sequence; never predicted
N_PITCH = 128
MAX_INTERVAL = N_PITCH - 1

# Discounts used while the counts-of-counts cannot estimate them (few tokens seen).
_FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


class MarkovModel:
    """Interpolated modified Kneser-Ney over tokens 0..vocab-1 with contexts of up to `order` tokens."""

    def __init__(self, vocab: int, order: int = 6) -> None:
        if vocab < 1:
            raise ValueError(f"vocab must be >= 1, got {vocab}")
        if order < 0:
            raise ValueError(f"order must be >= 0, got {order}")
        self.vocab = vocab
        self.order = order
        # _tables[k]: context of length k -> [total, n1, n2, n3plus, {token: count}]
        self._tables: list[dict[tuple[int, ...], list]] = [{} for _ in range(order + 1)]
        # _counts_of_counts[k][r]: how many (context, token) pairs of order k have count r (r = 1..4)
        self._counts_of_counts = [[0] * 5 for _ in range(order + 1)]
        self._context: tuple[int, ...] = (BOS,) * order
        self.tokens_seen = 0
        self._discounts: list[tuple[float, float, float]] = []
        self._discounts_at = -1

    # ----------------------------------------------------------- learning

    def observe(self, token: int) -> None:
        """Count `token` after the current history, then append it to the history."""
        if not 0 <= token < self.vocab:
            raise ValueError(f"token must be 0-{self.vocab - 1}, got {token}")
        ctx = self._context
        tables = self._tables
        k = self.order
        while True:
            entry = tables[k].get(ctx)
            if entry is None:
                entry = tables[k][ctx] = [0, 0, 0, 0, {}]
            counts = entry[4]
            c = counts.get(token, 0)
            counts[token] = c + 1
            entry[0] += 1
            if c < 3:
                entry[c + 1] += 1
                if c:
                    entry[c] -= 1
            coc = self._counts_of_counts[k]
            if c < 4:
                if c:
                    coc[c] -= 1
                coc[c + 1] += 1
            elif c == 4:
                coc[4] -= 1
            if k == 0:
                break
            # A lower order changes only if this n-gram is new, or if it starts with BOS (raw counts).
            if c and not (k > 1 and ctx[1] == BOS):
                break
            ctx = ctx[1:]
            k -= 1
        if self.order:
            self._context = self._context[1:] + (token,)
        self.tokens_seen += 1

    def observe_all(self, tokens: Iterable[int]) -> None:
        for token in tokens:
            self.observe(int(token))

    def fit(self, sequences: Iterable[Sequence[int]]) -> MarkovModel:
        """Observe each sequence from a fresh history; counts accumulate."""
        _fit(self, sequences)
        return self

    def reset_history(self) -> None:
        """Start a new sequence: the history is forgotten, the counts are kept."""
        self._context = (BOS,) * self.order

    @property
    def history(self) -> tuple[int, ...]:
        """The last `order` tokens of the current sequence (BOS where it has fewer)."""
        return self._context

    # --------------------------------------------------------- predicting

    def _padded(self, context: Sequence[int] | None) -> tuple[int, ...]:
        """A context given as the tokens since the sequence start, as the model's padded tuple."""
        if context is None:
            return self._context
        if not self.order:
            return ()
        tail = tuple(int(t) for t in context[-self.order :]) if len(context) else ()
        return (BOS,) * (self.order - len(tail)) + tail

    def discounts(self, k: int) -> tuple[float, float, float]:
        """(D1, D2, D3+) of order k from its counts of counts, clamped to sensible ranges."""
        if self._discounts_at != self.tokens_seen:
            self._discounts = [self._estimate_discounts(coc) for coc in self._counts_of_counts]
            self._discounts_at = self.tokens_seen
        return self._discounts[k]

    @staticmethod
    def _estimate_discounts(coc: list[int]) -> tuple[float, float, float]:
        n1, n2, n3, n4 = coc[1], coc[2], coc[3], coc[4]
        if min(n1, n2, n3, n4) == 0:
            return _FALLBACK_DISCOUNTS
        y = n1 / (n1 + 2 * n2)
        d1 = 1 - 2 * y * n2 / n1
        d2 = 2 - 3 * y * n3 / n2
        d3 = 3 - 4 * y * n4 / n3
        return (min(max(d1, 0.05), 0.95), min(max(d2, 0.05), 1.95), min(max(d3, 0.05), 2.95))

    def matched_order(self, context: Sequence[int] | None = None) -> int:
        """The longest context length (0..order) the model has seen before; -1 if it has seen nothing.

        Contexts are padded with BOS, so near a sequence start a match may include the start itself.
        """
        ctx = self._padded(context)
        best = -1
        for k in range(self.order + 1):
            if ctx[self.order - k :] not in self._tables[k]:
                break
            best = k
        return best

    def distribution(self, context: Sequence[int] | None = None) -> np.ndarray:
        """P(next token) over the vocabulary: all > 0, sums to 1.

        `context` is the tokens since the sequence start (only the last `order`
        matter); None means the model's own history.
        """
        seen, floor = self.seen_and_floor(context)
        p = seen + floor / self.vocab
        return p / p.sum()  # exact in theory; this only removes rounding

    def seen_and_floor(self, context: Sequence[int] | None = None) -> tuple[np.ndarray, float]:
        """`distribution(context)` in two parts: what the counts say, and the mass `floor` the
        smoothing spreads uniformly (distribution = seen + floor / vocab). Replacing that uniform
        part by another model's prediction backs off to that model instead of to chance."""
        ctx = self._padded(context)
        seen = np.zeros(self.vocab)
        floor = 1.0
        for k in range(self.order + 1):
            entry = self._tables[k].get(ctx[self.order - k :])
            if entry is None:
                break
            total, n1, n2, n3, counts = entry
            d = self.discounts(k)
            gamma = (d[0] * n1 + d[1] * n2 + d[2] * n3) / total
            keys = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            values = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            discount = np.array((0.0,) + d)[np.minimum(values, 3).astype(np.int64)]
            seen *= gamma
            seen[keys] += (values - discount) / total
            floor *= gamma
        return seen, floor

    def probability(self, token: int, context: Sequence[int] | None = None) -> float:
        """P(token | context): the same number as `distribution(context)[token]`, faster."""
        ctx = self._padded(context)
        p = 1.0 / self.vocab
        for k in range(self.order + 1):
            entry = self._tables[k].get(ctx[self.order - k :])
            if entry is None:
                break
            total, n1, n2, n3, counts = entry
            d1, d2, d3 = self.discounts(k)
            c = counts.get(token, 0)
            kept = c - (d1 if c == 1 else d2 if c == 2 else d3) if c else 0.0
            p = (kept + (d1 * n1 + d2 * n2 + d3 * n3) * p) / total
        return p

    def nll(self, tokens: Iterable[int]) -> float:
        """Negative log-likelihood (nats, summed) of `tokens` as a new sequence; the model is unchanged."""
        ctx = (BOS,) * self.order
        total = 0.0
        for token in tokens:
            token = int(token)
            total -= math.log(self.probability(token, ctx))
            if self.order:
                ctx = ctx[1:] + (token,)
        return total

    def context_count(self) -> int:
        """How many distinct contexts (all orders) the model holds: a measure of its memory use."""
        return sum(len(table) for table in self._tables)


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
        _fit(self, sequences)
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
        _fit(self, sequences)
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


def _fit(model: MarkovModel | IntervalMarkov | PitchMarkov, sequences: Iterable[Sequence[int]]) -> None:
    """What every `fit` does: each sequence from a fresh history, counts accumulating."""
    for sequence in sequences:
        model.reset_history()
        for token in sequence:
            model.observe(int(token))
    model.reset_history()
