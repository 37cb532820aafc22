"""Variable-order Markov models: smoothing, back-off, incremental learning, pitch variants."""

from __future__ import annotations

import math
import time
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from improv.model.kneser_ney import BOS, MarkovModel
from improv.model.markov import IntervalMarkov, PitchMarkov, best_weight, fit_pitch_markov


def reference_kneser_ney(sequences: list[list[int]], vocab: int, order: int, context: list[int]) -> np.ndarray:
    """Interpolated modified Kneser-Ney computed in batch from the n-grams, the textbook way."""
    raw: list[Counter] = [Counter() for _ in range(order + 1)]  # (context tuple, token) -> occurrences
    for seq in sequences:
        padded = [BOS] * order + list(seq)
        for i, token in enumerate(seq):
            full = tuple(padded[i : i + order])
            for k in range(order + 1):
                raw[k][(full[order - k :], token)] += 1
    counts: list[dict] = [dict(raw[order])]
    for k in range(order - 1, -1, -1):
        table: Counter = Counter()
        for (ctx, token), n in raw[k].items():
            if k >= 1 and ctx[0] == BOS:
                table[(ctx, token)] = n  # nothing precedes the start: raw counts
        for (ctx, token) in raw[k + 1]:
            if not (k >= 1 and ctx[1] == BOS):
                table[(ctx[1:], token)] += 1  # distinct left extensions
        counts.insert(0, dict(table))
    p = np.full(vocab, 1.0 / vocab)
    padded_ctx = tuple([BOS] * (order - len(context[-order:] if order else [])) + (context[-order:] if order else []))
    for k in range(order + 1):
        ctx = padded_ctx[order - k :]
        by_token = {t: n for (c, t), n in counts[k].items() if c == ctx}
        if not by_token:
            break
        coc = Counter(min(n, 5) for n in counts[k].values())
        n1, n2, n3, n4 = coc[1], coc[2], coc[3], coc[4]
        if min(n1, n2, n3, n4) == 0:
            d = (0.5, 1.0, 1.5)
        else:
            y = n1 / (n1 + 2 * n2)
            d = (
                min(max(1 - 2 * y * n2 / n1, 0.05), 0.95),
                min(max(2 - 3 * y * n3 / n2, 0.05), 1.95),
                min(max(3 - 4 * y * n4 / n3, 0.05), 2.95),
            )
        total = sum(by_token.values())
        kinds = Counter(min(n, 3) for n in by_token.values())
        gamma = (d[0] * kinds[1] + d[1] * kinds[2] + d[2] * kinds[3]) / total
        new = gamma * p
        for token, n in by_token.items():
            new[token] += (n - d[min(n, 3) - 1]) / total
        p = new
    return p


def test_incremental_counts_match_the_batch_definition() -> None:
    rng = np.random.default_rng(3)
    sequences = [rng.choice(6, size=int(rng.integers(1, 40)), p=[0.4, 0.2, 0.15, 0.1, 0.1, 0.05]).tolist() for _ in range(30)]
    model = MarkovModel(6, 3).fit(sequences)
    for context in ([], [0], [1, 2], [0, 0, 0], [5, 5, 5, 5], [2, 0, 1], [3, 3, 1, 0]):
        np.testing.assert_allclose(model.distribution(context), reference_kneser_ney(sequences, 6, 3, context), rtol=1e-10)


@settings(max_examples=40, deadline=None)
@given(
    sequences=st.lists(st.lists(st.integers(0, 7), max_size=30), max_size=6),
    order=st.integers(0, 5),
    context=st.lists(st.integers(0, 7), max_size=8),
)
def test_distribution_is_positive_sums_to_one_and_agrees_with_probability(
    sequences: list[list[int]], order: int, context: list[int]
) -> None:
    model = MarkovModel(8, order).fit(sequences)
    p = model.distribution(context)
    assert p.shape == (8,)
    assert (p > 0).all()
    assert math.isclose(p.sum(), 1.0, rel_tol=1e-12)
    for token in range(8):
        assert math.isclose(model.probability(token, context), p[token], rel_tol=1e-9)


def test_a_deterministic_sequence_is_learned() -> None:
    model = MarkovModel(20, 4)
    cycle = [3, 7, 1, 7, 9, 2]
    per_token = []
    for _ in range(40):
        per_token.append(model.nll(cycle * 3) / 18)
        model.observe_all(cycle)
    assert per_token[0] == pytest.approx(math.log(20))  # nothing seen: uniform
    assert all(b <= a + 1e-12 for a, b in zip(per_token[1:], per_token[2:]))  # never gets worse
    assert per_token[-1] < 0.1
    model.reset_history()
    assert int(np.argmax(model.distribution([3, 7, 1, 7]))) == 9  # needs two notes of context: 7 -> 1 or 9
    assert int(np.argmax(model.distribution([3, 7]))) == 1


def test_unseen_contexts_back_off_to_what_the_shorter_context_knows() -> None:
    model = MarkovModel(10, 5).fit([[0, 1, 2] * 5, [4, 1, 2, 4, 1, 2], [5, 6, 5, 6]])
    assert model.matched_order([9, 8, 1]) == 1  # only "1" matches
    p = model.distribution([9, 8, 1])
    assert int(np.argmax(p)) == 2 and p[2] > 0.5
    assert model.matched_order([9]) == 0
    fallback = model.distribution([9])
    np.testing.assert_array_equal(fallback, model.distribution([7]))  # both unseen: the same fallback
    # Kneser-Ney's fallback counts contexts, not occurrences: 2 is as frequent as 1 but only ever follows 1.
    unigram = MarkovModel(10, 0).fit([[0, 1, 2] * 5, [4, 1, 2, 4, 1, 2], [5, 6, 5, 6]]).distribution()
    assert unigram[2] == unigram[1] and fallback[2] < fallback[1]
    assert MarkovModel(10, 3).matched_order([1]) == -1  # nothing seen at all


def test_history_reset_counts_kept_and_nll_leaves_the_model_alone() -> None:
    model = MarkovModel(5, 2)
    model.observe_all([0, 1, 2, 3])
    assert model.history == (2, 3)
    contexts, before = model.context_count(), model.distribution([1])
    assert model.nll([4, 4, 4]) > 0
    model.reset_history()
    assert model.history == (BOS, BOS)
    assert model.context_count() == contexts and model.tokens_seen == 4
    np.testing.assert_array_equal(model.distribution([1]), before)
    np.testing.assert_array_equal(model.distribution(), model.distribution([]))
    with pytest.raises(ValueError, match="token must be 0-4"):
        model.observe(5)


def test_interval_model_is_transposition_invariant() -> None:
    tune = [60, 62, 64, 65, 67, 65, 64, 62] * 4
    interval = IntervalMarkov(4).fit([tune])
    absolute = MarkovModel(128, 4).fit([tune])
    up = [p + 5 for p in tune]
    first = -math.log(interval.distribution([])[60]), -math.log(interval.distribution([])[65])
    assert interval.nll(up) - first[1] == pytest.approx(interval.nll(tune) - first[0])
    assert interval.nll(up) < absolute.nll(up) / 2
    p = interval.distribution([126, 127])  # a rising line at the top: nothing above 127 may get mass
    assert p.shape == (128,) and (p > 0).all() and math.isclose(p.sum(), 1.0)


def test_pitch_mixture_is_a_distribution_and_its_weights_are_fitted() -> None:
    rng = np.random.default_rng(1)
    scale = [0, 2, 4, 5, 7, 9, 11]
    sequences = []
    for _ in range(40):
        root = int(rng.integers(48, 72))
        sequences.append([root + scale[int(i) % 7] + 12 * (int(i) // 7) for i in np.cumsum(rng.choice([-1, 1, 2], 24)) % 14])
    model = fit_pitch_markov(sequences, absolute_order=3, interval_order=4)
    assert len(model.weights) == model.interval.order + 2
    assert all(0 < w < 1 for w in model.weights)
    p = model.distribution([60, 62, 64])
    assert (p > 0).all() and math.isclose(p.sum(), 1.0)
    assert model.nll(sequences[0]) < MarkovModel(128, 0).fit(sequences).nll(sequences[0])
    assert best_weight(np.array([[0.9, 0.1]] * 10)) > 0.95
    with pytest.raises(ValueError, match="weights"):
        PitchMarkov(3, 4, weights=[0.5])


def test_update_cost_is_small() -> None:
    """Printed, not asserted: the live style memory updates once per played note (target << 50 us)."""
    rng = np.random.default_rng(0)
    pitches = (60 + np.cumsum(rng.choice([-2, -1, 1, 2], size=20000))).clip(0, 127).tolist()
    model, pitch_model = MarkovModel(128, 6), PitchMarkov(6, 8)
    began = time.perf_counter()
    for pitch in pitches:
        model.observe(pitch)
    absolute_us = (time.perf_counter() - began) / len(pitches) * 1e6
    began = time.perf_counter()
    for pitch in pitches:
        pitch_model.observe(pitch)
    mixture_us = (time.perf_counter() - began) / len(pitches) * 1e6
    began = time.perf_counter()
    for _ in range(200):
        pitch_model.distribution()
    distribution_us = (time.perf_counter() - began) / 200 * 1e6
    print(f"\nobserve: order-6 model {absolute_us:.1f} us, absolute+interval mixture {mixture_us:.1f} us; "
          f"mixture distribution {distribution_us:.0f} us")
    assert model.tokens_seen == len(pitches)


def test_distributions_follow_new_counts_between_queries() -> None:
    """`seen_and_floor` keeps each context's arrays until the counts change: a query after more
    tokens must give what a model that saw them all from the start gives."""
    rng = np.random.default_rng(4)
    tokens = [int(t) for t in rng.integers(0, 12, 400)]
    live = MarkovModel(12, 3)
    for i, token in enumerate(tokens):
        live.observe(token)
        if i % 37 == 0:
            fresh = MarkovModel(12, 3)
            fresh.observe_all(tokens[: i + 1])
            for context in ([], tokens[max(0, i - 2) : i + 1], [token, token, token]):
                live.distribution(context)  # a query between two observations
                np.testing.assert_allclose(live.distribution(context), fresh.distribution(context), rtol=1e-12)
