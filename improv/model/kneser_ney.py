"""A variable-order Markov model of integer tokens: the continuator's way of learning a style.

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

Pitch models built on it are in `markov`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

BOS = -1  # padding before the first token of a sequence; never predicted

# Discounts used while the counts-of-counts cannot estimate them (few tokens seen).
_FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)
_MAX_TERMS = 4096  # cached `_term`s: an answer asks for about a hundred; scoring a corpus, far more


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
        self._terms: dict[tuple[int, ...], tuple[float, np.ndarray, np.ndarray]] = {}  # see `_term`
        self._terms_at = -1
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
        fit_sequences(self, sequences)
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
        if self._terms_at != self.tokens_seen or len(self._terms) > _MAX_TERMS:  # new counts: all stale
            self._terms.clear()
            self._terms_at = self.tokens_seen
        seen = np.zeros(self.vocab)
        floor = 1.0
        for k in range(self.order + 1):
            key = ctx[self.order - k :]
            term = self._terms.get(key)
            if term is None:
                entry = self._tables[k].get(key)
                if entry is None:
                    break
                term = self._terms[key] = self._term(k, entry)
            gamma, keys, kept = term
            seen *= gamma
            seen[keys] += kept
            floor *= gamma
        return seen, floor

    def _term(self, k: int, entry: list) -> tuple[float, np.ndarray, np.ndarray]:
        """One order's part of `seen_and_floor`: its back-off weight, tokens and discounted shares.

        Kept until the counts change: while improv answers, the player is silent, and each answer
        note asks again for the same contexts' terms, the empty context's holding every token heard.
        """
        total, n1, n2, n3, counts = entry
        d = self.discounts(k)
        gamma = (d[0] * n1 + d[1] * n2 + d[2] * n3) / total
        keys = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        values = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        discount = np.array((0.0,) + d)[np.minimum(values, 3).astype(np.int64)]
        return gamma, keys, (values - discount) / total

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


class Learner(Protocol):
    """What `fit_sequences` needs: a model that observes tokens after a history it can reset."""

    def observe(self, token: int) -> None: ...

    def reset_history(self) -> None: ...


def fit_sequences(model: Learner, sequences: Iterable[Sequence[int]]) -> None:
    """What every `fit` does: each sequence from a fresh history, counts accumulating."""
    for sequence in sequences:
        model.reset_history()
        for token in sequence:
            model.observe(int(token))
    model.reset_history()
