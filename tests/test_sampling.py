"""Tests for improv.model.sampling: textbook values, limits, and hypothesis invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from improv.model import sampling
from improv.errors import ConfigError
from improv.model.constraints import polyphony_mask
from improv.model.sampling import (
    HeadTemperatures,
    apply_mask,
    cc_from_temperature,
    draw,
    entropy,
    log_softmax,
    probabilities,
    sample,
    surprisal,
    temperature_from_cc,
)
from improv.music.keys import MODES, format_key, parse_key, parse_range, pitch_mask, range_mask, scale_mask

# Per test, not a global profile, so other test files keep their own settings.
# No deadline: the machine running CI may be busy; speed is not tested here.
thorough = settings(deadline=None, max_examples=150)

TEXTBOOK_LOGITS = np.array([5.0, 4.0, 1.0])


def softmax_reference(logits: list[float], temperature: float) -> list[float]:
    """Plain-Python softmax, to check the numpy version against (fine for small logits)."""
    exps = [math.exp(z / temperature) for z in logits]
    total = sum(exps)
    return [e / total for e in exps]


# -- strategies ----------------------------------------------------------------

finite_logit = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)
logit_arrays = st.one_of(
    hnp.arrays(np.float64, st.integers(1, 128), elements=finite_logit),
    hnp.arrays(np.float32, st.integers(1, 128), elements=st.floats(-1e4, 1e4, width=32)),
)
temperatures = st.floats(1e-3, 1e3)
top_ps = st.none() | st.floats(0.01, 1.0)


@st.composite
def logits_and_mask(draw_: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Logits with a mask that allows at least one entry."""
    logits = draw_(logit_arrays)
    mask = draw_(hnp.arrays(np.bool_, logits.shape))
    mask[draw_(st.integers(0, logits.size - 1))] = True
    return logits, mask


class FixedUniform:
    """Stands in for a Generator whose next uniform is known, to test draw's edges."""

    def __init__(self, u: float) -> None:
        self.u = u

    def random(self) -> float:
        return self.u


# -- temperature: textbook values and limits -----------------------------------


@pytest.mark.parametrize(
    ("temperature", "rounded"),
    [
        (10.0, (0.39, 0.35, 0.26)),
        (1.0, (0.72, 0.27, 0.01)),
    ],
)
def test_textbook_values(temperature: float, rounded: tuple[float, ...]) -> None:
    probs = probabilities(TEXTBOOK_LOGITS, temperature)
    assert probs == pytest.approx(rounded, abs=0.006)
    assert probs == pytest.approx(softmax_reference([5, 4, 1], temperature), rel=1e-12)


def test_textbook_values_at_low_temperature() -> None:
    probs = probabilities(TEXTBOOK_LOGITS, 0.1)
    assert probs[0] == pytest.approx(0.9999, abs=1e-4)
    assert probs[1] == pytest.approx(4.54e-5, rel=0.01)
    assert 1e-18 < probs[2] < 1e-17  # exp(-40) / (1 + exp(-10)) = 4.25e-18
    assert probs == pytest.approx(softmax_reference([5, 4, 1], 0.1), rel=1e-12)


def test_lower_temperature_sharpens() -> None:
    tops = [probabilities(TEXTBOOK_LOGITS, t)[0] for t in (10.0, 3.0, 1.0, 0.3, 0.1)]
    assert tops == sorted(tops) and tops[0] < tops[-1]


@thorough
@given(hnp.arrays(np.int64, st.integers(1, 128), elements=st.integers(-1000, 1000)))
def test_near_zero_temperature_gives_argmax(int_logits: np.ndarray) -> None:
    logits = int_logits.astype(np.float64)  # integers: maxima stand at least 1 apart from the rest
    best = logits == logits.max()
    probs = probabilities(logits, 1e-6)
    assert np.all(probs[~best] == 0.0)
    assert np.allclose(probs[best], 1.0 / best.sum())
    assert best[sample(logits, 1e-6, np.random.default_rng(0))]


@thorough
@given(logit_arrays)
def test_large_temperature_gives_uniform(logits: np.ndarray) -> None:
    probs = probabilities(logits, 1e12)
    assert np.allclose(probs, 1.0 / logits.size, rtol=1e-6, atol=0)


@pytest.mark.filterwarnings("error")  # overflow or invalid-value warnings fail the test
@pytest.mark.parametrize("temperature", [5e-324, 1e-306, 1e-4, 1e-2, 1.0, 1e4, 1e300])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_extreme_values_stay_finite(temperature: float, dtype: type) -> None:
    logits: np.ndarray = np.array([1e4, -1e4, 0.0, 1e4 - 1, -np.inf], dtype=dtype)
    probs = probabilities(logits, temperature)
    assert probs.dtype == np.float64
    assert np.all(np.isfinite(probs)) and probs.sum() == pytest.approx(1.0)
    assert probs[4] == 0.0
    logp = log_softmax(logits, temperature)
    assert not np.any(np.isnan(logp)) and logp[4] == -math.inf
    assert logp[0] == pytest.approx(math.log(probs[0]), abs=1e-9)
    assert sample(logits, temperature, np.random.default_rng(1)) in {0, 1, 2, 3}


def test_extreme_temperatures_reach_their_limits() -> None:
    logits = np.array([1e4, -1e4, 0.0])
    assert probabilities(logits, 1e-4).tolist() == [1.0, 0.0, 0.0]
    assert probabilities(logits, 1e300) == pytest.approx([1 / 3] * 3)


@pytest.mark.parametrize("bad", [0, 0.0, -0.0, -1.0, math.nan, math.inf, -math.inf, "1.0", None, True, 1j])
def test_bad_temperature_raises(bad: object) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="temperature"):
        probabilities(TEXTBOOK_LOGITS, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="temperature"):
        sample(TEXTBOOK_LOGITS, bad, rng)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="temperature"):
        log_softmax(TEXTBOOK_LOGITS, bad)  # type: ignore[arg-type]


def test_numpy_scalars_are_accepted_as_temperature() -> None:
    from_float32 = probabilities(TEXTBOOK_LOGITS, np.float32(1.0))  # type: ignore[arg-type]
    assert from_float32 == pytest.approx(probabilities(TEXTBOOK_LOGITS, 1.0))
    assert probabilities(TEXTBOOK_LOGITS, 2) == pytest.approx(softmax_reference([5, 4, 1], 2.0))


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.0001, math.nan, "0.9"])
def test_bad_top_p_raises(bad: object) -> None:
    with pytest.raises(ValueError, match="top-p"):
        probabilities(TEXTBOOK_LOGITS, 1.0, top_p=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "logits",
    [[1.0, math.nan], [1.0, math.inf], [-math.inf, -math.inf], [], [[1.0, 2.0]]],
    ids=["nan", "plus-inf", "all-minus-inf", "empty", "2-d"],
)
@pytest.mark.filterwarnings("error")
def test_bad_logits_raise(logits: list[object]) -> None:
    with pytest.raises(ValueError, match="logits"):
        probabilities(np.array(logits), 1.0)


def test_mask_of_wrong_shape_raises() -> None:
    with pytest.raises(ValueError, match="shape"):
        sample(TEXTBOOK_LOGITS, 1.0, np.random.default_rng(0), mask=np.ones(4, bool))


# -- invariants ------------------------------------------------------------------


@thorough
@given(logit_arrays, temperatures, top_ps)
def test_probabilities_form_a_distribution(logits: np.ndarray, temperature: float, top_p: float | None) -> None:
    probs = probabilities(logits, temperature, top_p=top_p)
    assert probs.shape == logits.shape
    assert np.all(probs >= 0.0)
    assert probs.sum() == pytest.approx(1.0, abs=1e-12)


@thorough
@given(logits_and_mask(), temperatures, top_ps)
def test_inputs_are_not_modified(case: tuple[np.ndarray, np.ndarray], temperature: float, top_p: float | None) -> None:
    logits, mask = case
    logits_before, mask_before = logits.copy(), mask.copy()
    probs = probabilities(logits, temperature, top_p=top_p, mask=mask)
    probs_before = probs.copy()
    sample(logits, temperature, np.random.default_rng(0), top_p=top_p, mask=mask)
    log_softmax(logits, temperature)
    apply_mask(logits, mask)
    draw(probs, np.random.default_rng(0))
    entropy(probs)
    assert np.array_equal(logits, logits_before) and np.array_equal(mask, mask_before)
    assert np.array_equal(probs, probs_before)


@thorough
@given(logit_arrays, temperatures, st.floats(-1e3, 1e3))
def test_shifting_logits_changes_nothing(logits: np.ndarray, temperature: float, shift: float) -> None:
    z = logits.astype(np.float64)
    assert np.allclose(probabilities(z + shift, temperature), probabilities(z, temperature), atol=1e-6)


@thorough
@given(logit_arrays, temperatures)
def test_log_softmax_is_log_of_probabilities(logits: np.ndarray, temperature: float) -> None:
    logp = log_softmax(logits, temperature)
    assert np.logaddexp.reduce(logp) == pytest.approx(0.0, abs=1e-9)
    assert np.allclose(np.exp(logp), probabilities(logits, temperature), atol=1e-12)


@thorough
@given(logits_and_mask(), temperatures, top_ps, st.integers(0, 2**32 - 1))
def test_mask_is_respected(case: tuple[np.ndarray, np.ndarray], temperature: float, top_p: float | None, seed: int) -> None:
    logits, mask = case
    probs = probabilities(logits, temperature, top_p=top_p, mask=mask)
    assert np.all(probs[~mask] == 0.0)
    assert probs.sum() == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(seed)
    drawn = {sample(logits, temperature, rng, top_p=top_p, mask=mask) for _ in range(20)}
    assert all(mask[i] and probs[i] > 0 for i in drawn)
    assert np.all(np.isneginf(apply_mask(logits, mask)[~mask]))


@thorough
@given(logit_arrays, temperatures)
def test_mask_that_removes_everything_falls_back_to_unmasked(logits: np.ndarray, temperature: float) -> None:
    nothing = np.zeros(logits.shape, dtype=bool)
    assert np.array_equal(probabilities(logits, temperature, mask=nothing), probabilities(logits, temperature))
    assert np.array_equal(apply_mask(logits, nothing), logits.astype(np.float64))


def test_mask_whose_allowed_entries_are_minus_inf_falls_back() -> None:
    logits = np.array([1.0, 2.0, -np.inf])
    only_last = np.array([False, False, True])
    assert probabilities(logits, 1.0, mask=only_last) == pytest.approx(probabilities(logits, 1.0))


@thorough
@given(logit_arrays, temperatures, st.floats(0.01, 1.0))
def test_top_p_keeps_the_most_probable_tokens_reaching_p(logits: np.ndarray, temperature: float, top_p: float) -> None:
    full = probabilities(logits, temperature)
    kept = probabilities(logits, temperature, top_p=top_p) > 0
    assert kept.any()
    assert full[kept].sum() >= top_p - 1e-9
    assert full[kept].min() >= full[~kept].max(initial=0.0)  # a top set, not any set


def test_top_p_is_minimal_without_ties() -> None:
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    assert (probabilities(logits, 1.0, top_p=0.49) > 0).tolist() == [True, False, False, False]
    assert (probabilities(logits, 1.0, top_p=0.51) > 0).tolist() == [True, True, False, False]
    assert (probabilities(logits, 1.0, top_p=0.9) > 0).tolist() == [True, True, True, False]
    assert probabilities(logits, 1.0, top_p=0.9) == pytest.approx([0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0])
    assert (probabilities(logits, 1.0, top_p=1.0) > 0).all()


def test_top_p_keeps_ties_at_the_edge() -> None:
    probs = probabilities(np.zeros(4), 1.0, top_p=0.3)
    assert probs == pytest.approx([0.25] * 4)


@thorough
@given(logit_arrays, temperatures, top_ps, st.integers(0, 2**32 - 1))
def test_sampling_is_deterministic_for_a_seed(logits: np.ndarray, temperature: float, top_p: float | None, seed: int) -> None:
    a, b = np.random.default_rng(seed), np.random.default_rng(seed)
    run_a = [sample(logits, temperature, a, top_p=top_p) for _ in range(10)]
    run_b = [sample(logits, temperature, b, top_p=top_p) for _ in range(10)]
    assert run_a == run_b
    assert all(0 <= i < logits.size for i in run_a)


def test_sample_follows_probabilities() -> None:
    rng = np.random.default_rng(1234)
    n = 20_000
    counts = np.bincount([sample(TEXTBOOK_LOGITS, 1.0, rng) for _ in range(n)], minlength=3)
    assert counts / n == pytest.approx(probabilities(TEXTBOOK_LOGITS, 1.0), abs=0.015)


def test_sample_and_draw_agree_for_the_same_seed() -> None:
    probs = probabilities(TEXTBOOK_LOGITS, 1.0)
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    tokens = [sample(TEXTBOOK_LOGITS, 1.0, a) for _ in range(200)]
    assert tokens == [draw(probs, b) for _ in range(200)]
    assert len(set(tokens)) == 3


@pytest.mark.parametrize(
    ("probs", "u", "expected"),
    [
        ([0.5, 0.0, 0.5], 0.5, 2),  # a boundary skips the zero-weight entry
        ([0.0, 1.0], 0.0, 1),  # leading zero weight is never drawn
        ([0.0, 0.0, 2.0, 0.0], 0.0, 2),
        ([0.3, 0.7, 0.0], float(np.nextafter(1.0, 0.0)), 1),
        ([0.3, 0.7, 0.0, 0.0], 1.0, 1),  # as if u * total rounded up to total: last non-zero entry
        ([0.2, 0.3, 0.5], 0.1, 0),
        ([0.2, 0.3, 0.5], 0.3, 1),
        ([2.0, 6.0], 0.5, 1),  # weights need not sum to 1
    ],
)
def test_draw_edges(probs: list[float], u: float, expected: int) -> None:
    assert draw(probs, FixedUniform(u)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("probs", [[0.0, 0.0], [1.0, math.nan], [math.inf, 1.0], [], [[0.5, 0.5]]])
def test_draw_rejects_weights_without_a_finite_positive_sum(probs: list[float]) -> None:
    with pytest.raises(ValueError, match="probabilities must"):
        draw(probs, np.random.default_rng(0))


# -- entropy and surprisal -----------------------------------------------------------


@pytest.mark.parametrize(
    ("probs", "nats"),
    [
        ([1.0, 0.0, 0.0], 0.0),
        ([0.5, 0.5, 0.0], math.log(2)),
        ([0.25] * 4, math.log(4)),
        ([1 / 128] * 128, math.log(128)),
        ([0.9, 0.1], -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))),
    ],
)
def test_entropy_in_nats(probs: list[float], nats: float) -> None:
    assert entropy(probs) == pytest.approx(nats, abs=1e-12)


@thorough
@given(logit_arrays, temperatures)
def test_entropy_is_between_zero_and_log_n(logits: np.ndarray, temperature: float) -> None:
    h = entropy(probabilities(logits, temperature))
    assert -1e-12 <= h <= math.log(logits.size) + 1e-9


def test_surprisal() -> None:
    probs = np.array([0.5, 0.25, 0.25, 0.0])
    assert surprisal(probs, 0) == pytest.approx(math.log(2))
    assert surprisal(probs, 1) == pytest.approx(math.log(4))
    assert surprisal(probs, 3) == math.inf


# -- per-head temperature ------------------------------------------------------------


def test_one_temperature_for_every_head_by_default() -> None:
    temps = HeadTemperatures(0.8)
    assert [temps.for_head(h) for h in ("pitch", "step", "duration", "velocity")] == [0.8] * 4


def test_head_scales_multiply_the_base() -> None:
    temps = HeadTemperatures(2.0, {"velocity": 0.25})
    assert temps.for_head("velocity") == 0.5
    assert temps.for_head("pitch") == 2.0


@pytest.mark.parametrize(("base", "scales"), [(0.0, {}), (1.0, {"pitch": 0.0}), (1.0, {"pitch": math.inf}), (1e-200, {"pitch": 1e-200})])
def test_bad_head_temperatures_raise(base: float, scales: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="temperature"):
        HeadTemperatures(base, scales)


# -- constraints ----------------------------------------------------------------------


def pitch_classes(mask: np.ndarray) -> set[int]:
    return {int(p) % 12 for p in np.flatnonzero(mask)}


@pytest.mark.parametrize(
    ("root", "mode", "expected"),
    [
        (0, "major", {0, 2, 4, 5, 7, 9, 11}),
        (9, "minor", {9, 11, 0, 2, 4, 5, 7}),  # A minor shares C major's notes
        (6, "major", {6, 8, 10, 11, 1, 3, 5}),
        (0, "minor", {0, 2, 3, 5, 7, 8, 10}),
        (9, "harmonic_minor", {9, 11, 0, 2, 4, 5, 8}),
        (2, "dorian", {2, 4, 5, 7, 9, 11, 0}),
        (7, "mixolydian", {7, 9, 11, 0, 2, 4, 5}),
        (0, "pentatonic_major", {0, 2, 4, 7, 9}),
        (9, "pentatonic_minor", {9, 0, 2, 4, 7}),
        (0, "blues", {0, 3, 5, 6, 7, 10}),
        (5, "chromatic", set(range(12))),
    ],
)
def test_scale_mask_pitch_classes(root: int, mode: str, expected: set[int]) -> None:
    mask = scale_mask(root, mode)
    assert mask.shape == (128,) and mask.dtype == np.bool_
    assert pitch_classes(mask) == expected
    assert np.array_equal(mask[:116], mask[12:128])  # the same in every octave


def test_c_major_has_seven_notes_per_octave() -> None:
    mask = scale_mask(0, "major")
    assert np.flatnonzero(mask[60:72]).tolist() == [0, 2, 4, 5, 7, 9, 11]
    assert mask.sum() == 75  # 10 full octaves (70) + C D E F G of the last partial one


@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_contains_its_root(mode: str) -> None:
    for root in range(12):
        assert scale_mask(root, mode)[root]


def test_scale_mask_size() -> None:
    assert scale_mask(2, "major", n_pitches=24).shape == (24,)


@pytest.mark.parametrize(("root", "mode"), [(12, "major"), (-1, "major"), (0, "lydian dominant"), (0, 3), (1.5, "major")])
def test_bad_scale_raises(root: object, mode: object) -> None:
    with pytest.raises(ValueError):
        scale_mask(root, mode)  # type: ignore[arg-type]


def test_range_mask_is_inclusive() -> None:
    mask = range_mask(36, 96)
    assert mask.sum() == 61
    assert mask[36] and mask[96] and not mask[35] and not mask[97]
    assert range_mask(0, 127).all()
    assert range_mask(60, 60).sum() == 1


@pytest.mark.parametrize(("lo", "hi"), [(60, 59), (-1, 60), (0, 128), (0.5, 60)])
def test_bad_range_mask_raises(lo: object, hi: object) -> None:
    with pytest.raises(ValueError, match="pitch"):
        range_mask(lo, hi)  # type: ignore[arg-type]


def test_pitch_mask_combines_range_and_key() -> None:
    mask = pitch_mask(60, 72, 0, "pentatonic_major")
    assert np.flatnonzero(mask).tolist() == [60, 62, 64, 67, 69, 72]
    assert np.array_equal(pitch_mask(40, 50), range_mask(40, 50))


def test_pitch_mask_reports_a_range_without_key_notes() -> None:
    with pytest.raises(ConfigError, match="C#:major"):
        pitch_mask(62, 62, 1, "major")  # D is not in C# major
    with pytest.raises(ConfigError, match="root and a mode"):
        pitch_mask(60, 72, 0, None)


@thorough
@given(
    hnp.arrays(np.float64, 128, elements=finite_logit),
    st.integers(0, 120),
    st.integers(0, 7),
    st.integers(0, 11),
    st.sampled_from(list(MODES)),
    temperatures,
    st.integers(0, 2**32 - 1),
)
def test_constraints_never_emit_a_forbidden_pitch(
    logits: np.ndarray, lo: int, width: int, root: int, mode: str, temperature: float, seed: int
) -> None:
    hi = lo + width
    allowed = range_mask(lo, hi) & scale_mask(root, mode)
    assume(allowed.any())
    rng = np.random.default_rng(seed)
    for _ in range(10):
        pitch = sample(logits, temperature, rng, mask=pitch_mask(lo, hi, root, mode))
        assert lo <= pitch <= hi and (pitch - root) % 12 in MODES[mode]


@pytest.mark.parametrize(
    ("chord", "max_polyphony", "chord_bin_allowed"),
    [
        (set(), 1, True),
        ({60}, 1, False),
        ({60, 64}, 3, True),
        ({60, 64, 67}, 3, False),
        ([60, 60, 64], 3, True),  # a repeated pitch counts once
        ({60, 64, 67, 70}, 3, False),
    ],
)
def test_polyphony_mask(chord: set[int], max_polyphony: int, chord_bin_allowed: bool) -> None:
    mask = polyphony_mask(chord, max_polyphony, n_step_bins=32)
    assert mask.shape == (32,)
    assert mask[0] == chord_bin_allowed
    assert mask[1:].all()


def test_polyphony_mask_with_another_chord_bin() -> None:
    mask = polyphony_mask({60, 64}, 2, n_step_bins=8, chord_bin=3)
    assert np.flatnonzero(~mask).tolist() == [3]


def test_polyphony_mask_stops_step_zero_in_sampling() -> None:
    logits = np.array([10.0, 0.0, 0.0, 0.0])  # the model wants another chord tone
    rng = np.random.default_rng(0)
    at_max = polyphony_mask({60, 64}, 2, n_step_bins=4)
    assert all(sample(logits, 1.0, rng, mask=at_max) != 0 for _ in range(50))
    below_max = polyphony_mask({60}, 2, n_step_bins=4)
    assert sample(logits, 0.01, rng, mask=below_max) == 0


def test_polyphony_mask_with_one_bin_falls_back() -> None:
    mask = polyphony_mask({60}, 1, n_step_bins=1)
    assert not mask.any()
    assert sample(np.array([0.0]), 1.0, np.random.default_rng(0), mask=mask) == 0


@pytest.mark.parametrize(("max_polyphony", "n_step_bins", "chord_bin"), [(0, 32, 0), (2, 0, 0), (2, 32, 32), (2.0, 32, 0)])
def test_bad_polyphony_mask_raises(max_polyphony: object, n_step_bins: object, chord_bin: object) -> None:
    with pytest.raises(ValueError):
        polyphony_mask({60}, max_polyphony, n_step_bins, chord_bin)  # type: ignore[arg-type]


# -- parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("C:minor", (0, "minor")),
        ("F#:major", (6, "major")),
        ("Bb:dorian", (10, "dorian")),
        ("bb:DORIAN", (10, "dorian")),
        ("c:Major", (0, "major")),
        ("Cb:major", (11, "major")),
        ("B#:minor", (0, "minor")),
        ("E:harmonic_minor", (4, "harmonic_minor")),
        ("d:harmonic-minor", (2, "harmonic_minor")),
        (" G : pentatonic minor ", (7, "pentatonic_minor")),
        ("A:aeolian", (9, "minor")),
        ("Eb:blues", (3, "blues")),
        ("F♯:mixolydian", (6, "mixolydian")),
        ("a:chromatic", (9, "chromatic")),
    ],
)
def test_parse_key(text: str, expected: tuple[int, str]) -> None:
    assert parse_key(text) == expected


@pytest.mark.parametrize("text", ["", "C", "H:major", "C:foo", "C#major", "C:major:extra", "Cx:major", "C##:major", ":major", 5])
def test_parse_key_rejects_bad_keys(text: object) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_key(text)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message
    assert all(mode in message for mode in MODES)


@pytest.mark.parametrize("mode", list(MODES))
def test_format_key_round_trips(mode: str) -> None:
    for root in range(12):
        assert parse_key(format_key(root, mode)) == (root, mode)


def test_format_key_spells_with_sharps() -> None:
    assert format_key(10, "dorian") == "A#:dorian"


@pytest.mark.parametrize(("text", "expected"), [("36-96", (36, 96)), (" 0 - 127 ", (0, 127)), ("60-60", (60, 60))])
def test_parse_range(text: str, expected: tuple[int, int]) -> None:
    assert parse_range(text) == expected


@pytest.mark.parametrize("text", ["96-36", "0-128", "-1-5", "36", "a-b", "36-96-100", "", "36:96", "36.5-96", None])
def test_parse_range_rejects_bad_ranges(text: object) -> None:
    with pytest.raises(ConfigError, match="LOW-HIGH") as caught:
        parse_range(text)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)


# -- temperature knob ------------------------------------------------------------------------


def test_cc_endpoints() -> None:
    assert [temperature_from_cc(v) for v in (0, 64, 127)] == [0.1, 1.0, 3.0]


@pytest.mark.parametrize(("lo", "mid", "hi"), [(0.1, 0.7, 1.7), (0.2, 1.3, 2.9), (0.05, 0.5, 5.0)])
def test_cc_endpoints_are_exact_for_any_bounds(lo: float, mid: float, hi: float) -> None:
    # mid * (hi / mid) ** 1 is 1.7000000000000002 for the first case; the knob's end must be hi itself.
    assert [temperature_from_cc(v, lo, mid, hi) for v in (0, 64, 127)] == [lo, mid, hi]


def test_cc_is_log_linear_in_each_half() -> None:
    assert temperature_from_cc(32) == pytest.approx(math.sqrt(0.1 * 1.0))
    assert temperature_from_cc(64 + 63 / 2) == pytest.approx(math.sqrt(1.0 * 3.0))


def test_cc_mapping_is_strictly_increasing() -> None:
    temps = [temperature_from_cc(v) for v in range(128)]
    assert all(a < b for a, b in zip(temps, temps[1:]))


def test_cc_round_trips() -> None:
    assert [cc_from_temperature(temperature_from_cc(v)) for v in range(128)] == list(range(128))
    assert [cc_from_temperature(t) for t in (0.1, 1.0, 3.0)] == [0, 64, 127]


@thorough
@given(st.floats(0.1, 3.0), st.floats(0.1, 3.0))
def test_cc_from_temperature_is_monotonic(a: float, b: float) -> None:
    lo_t, hi_t = sorted((a, b))
    assert cc_from_temperature(lo_t) <= cc_from_temperature(hi_t)


def test_cc_with_custom_bounds() -> None:
    assert temperature_from_cc(0, lo=0.5, mid=0.8, hi=2.0) == pytest.approx(0.5)
    assert temperature_from_cc(64, lo=0.5, mid=0.8, hi=2.0) == pytest.approx(0.8)
    assert temperature_from_cc(127, lo=0.5, mid=0.8, hi=2.0) == 2.0
    assert cc_from_temperature(0.8, lo=0.5, mid=0.8, hi=2.0) == 64


@pytest.mark.parametrize("value", [-1, 128, math.nan, "64", True, None])
def test_bad_cc_value_raises(value: object) -> None:
    with pytest.raises(ConfigError, match="CC value"):
        temperature_from_cc(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(("lo", "mid", "hi"), [(0.0, 1.0, 3.0), (1.0, 1.0, 3.0), (0.1, 3.0, 1.0), (0.1, 1.0, math.inf), (-1.0, 1.0, 3.0)])
def test_bad_cc_bounds_raise(lo: float, mid: float, hi: float) -> None:
    with pytest.raises(ConfigError, match="lo < mid < hi"):
        temperature_from_cc(64, lo, mid, hi)
    with pytest.raises(ConfigError, match="lo < mid < hi"):
        cc_from_temperature(1.0, lo, mid, hi)


@pytest.mark.parametrize("temperature", [0.05, 3.5, 0.0, math.nan])
def test_cc_from_temperature_outside_the_knob_raises(temperature: float) -> None:
    with pytest.raises(ConfigError, match="temperature"):
        cc_from_temperature(temperature)


def test_public_names_exist() -> None:
    assert all(hasattr(sampling, name) for name in sampling.__all__)


@thorough
@given(logits=logit_arrays, temperature=temperatures, top_p=top_ps, seed=st.integers(0, 2**32 - 1), data=st.data())
def test_choose_draws_from_probabilities_and_reports_the_models_own_surprise(logits, temperature, top_p, seed, data) -> None:
    """`choose`, the rolling seed's one sampler (compiled): the token an inverse-CDF draw over
    `probabilities` (plain numpy) gives for the same uniform, unless that uniform sits within rounding
    of a boundary; and the NLL and entropy of the head at T = 1 however the knob and the masks are set."""
    mask = data.draw(st.none() | hnp.arrays(np.bool_, logits.size))
    token, nll, spread = sampling.choose(logits, temperature, np.random.default_rng(seed), top_p, mask)
    u = np.random.default_rng(seed).random()
    probs = probabilities(logits, temperature, top_p, mask)
    if not np.any(np.abs(np.cumsum(probs) - u) < 1e-9):
        assert token == draw(probs, FixedUniform(u))  # type: ignore[arg-type]
    assert probs[token] > 0
    at_one = log_softmax(logits)
    assert nll == pytest.approx(-at_one[token], rel=1e-7, abs=1e-9)
    assert spread == pytest.approx(entropy(np.exp(at_one)), rel=1e-7, abs=1e-9)
    assert -1e-12 <= spread <= math.log(logits.size) + 1e-9


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_a_mask_that_allows_only_underflowing_entries_still_draws_them(temperature: float) -> None:
    """exp(-1000) is 0 in float64: scaled against the overall maximum, the allowed entries weigh
    nothing, so the draw must rescale against the allowed maximum, not fall back to the unmasked."""
    logits = np.array([0.0, -1000.0, -1001.0, -2000.0])
    mask = np.array([False, True, True, False])
    probs = probabilities(logits, temperature, mask=mask)
    assert probs[1] > probs[2] > 0 and probs[0] == probs[3] == 0
    rng = np.random.default_rng(3)
    drawn = [sampling.choose(logits, temperature, rng, None, mask) for _ in range(200)]
    assert {token for token, _, _ in drawn} == {1, 2}
    assert drawn[0][1] == pytest.approx(-log_softmax(logits)[drawn[0][0]])
