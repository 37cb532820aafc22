"""The rolling seed and its sampler, against the sampler the shipped model file carries inside it."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from improv.model import sampling
from improv.model.constraints import step_mask
from improv.music.events import Event
from improv.model.rolling_seed import Constraints, Improviser
from improv.model.network import ImprovNet, ModelConfig, export, load
from improv.model.shipped import default_model_path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(11)
    net = ImprovNet(ModelConfig(hidden=48, embed=24, head_hidden=32, relative_pitch=True)).eval()
    with torch.no_grad():  # sharper than a fresh init, so temperature and masks matter
        for head in (net.step_head, net.pitch_head, net.duration_head, net.velocity_head):
            head.net[3].weight.mul_(8)
        net.pitch_interval_out.weight.normal_(0, 0.3)
    path = tmp_path_factory.mktemp("m") / "m.pt"
    export(net, path)
    return load(path)


@pytest.fixture(scope="module")
def shipped():
    """A file written before sampling lived in one place: it carries a TorchScript sampler of its own."""
    return load(default_model_path())


def primed(model) -> Improviser:
    improviser = Improviser(model)
    for i, pitch in enumerate([60, 64, 67, 72, 71, 67]):
        improviser.observe(Event(pitch, 0.0 if i == 1 else 0.25, 0.3, 80))
    return improviser


@pytest.mark.parametrize("temperature,top_p", [(1.0, None), (0.3, None), (2.0, 0.9)])
def test_draws_are_those_of_the_sampler_inside_the_shipped_file(shipped, temperature: float, top_p: float | None) -> None:
    """Today's one sampler, on the step rebuilt from the file's weights, draws what the file's own
    `sample_next` drew from the same uniforms: behaviour did not change beyond float rounding."""
    assert hasattr(shipped.module, "sample_next")
    constraints = Constraints(40, 90, (0, "major"), 3)
    improviser = primed(shipped)
    rng_ours, rng_file = np.random.default_rng(3), np.random.default_rng(3)
    allowed = constraints.pitch_mask()
    same = 0
    for _ in range(200):
        steps = step_mask(constraints, improviser._chord, improviser._chord_mask, allowed, shipped.bins.n_step)
        with torch.inference_mode():
            _, tokens, stats = shipped.module.sample_next(
                torch.from_numpy(improviser.state.copy()), temperature, 1.0 if top_p is None else top_p,
                torch.from_numpy(rng_file.random(4)), torch.from_numpy(allowed),
                torch.from_numpy(np.ones(shipped.bins.n_step, bool) if steps is None else steps),
                torch.from_numpy(improviser._chord_mask.copy()),
            )
        ours = improviser.sample(temperature, rng_ours, constraints, top_p)
        assert 40 <= ours.event.pitch <= 90 and ours.event.pitch % 12 in (0, 2, 4, 5, 7, 9, 11)
        if ours.tokens != tuple(tokens):  # a uniform within rounding error of a boundary
            continue
        same += 1
        assert ours.nll == pytest.approx(stats[0], rel=1e-4, abs=1e-4)
        assert ours.entropy == pytest.approx(stats[1], rel=1e-4, abs=1e-4)
    assert same >= 198


def test_sampling_keeps_chords_within_polyphony(model) -> None:
    improviser = primed(model)
    rng = np.random.default_rng(0)
    chord = 1
    for _ in range(300):
        sampled = improviser.sample(3.0, rng, Constraints(max_polyphony=2))
        chord = chord + 1 if sampled.tokens[1] == 0 else 1
        assert chord <= 2


@settings(max_examples=150, deadline=None)
@given(
    logits=arrays(np.float32, st.integers(2, 40), elements=st.floats(-30, 30, width=32)),
    temperature=st.floats(0.05, 5.0),
    top_p=st.one_of(st.just(1.0), st.floats(0.05, 1.0)),
    data=st.data(),
)
def test_the_shipped_files_own_probabilities_match_the_sampler(shipped, logits, temperature, top_p, data) -> None:
    mask = data.draw(arrays(np.bool_, logits.size))
    expected = sampling.probabilities(logits, temperature, top_p if top_p < 1 else None, mask)
    got = shipped.module.probabilities(torch.from_numpy(logits), temperature, top_p, torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_after_warm_up_playing_never_compiles_again(shipped, model) -> None:
    """The step and the draw are compiled (numba) once per argument types. A new type mid-session
    (a numpy int32, a strided mask) would compile another version, for seconds, in the middle of a
    phrase: every path the live engine takes must reuse what the warm-up compiled."""
    from improv.model import kernels
    from improv.model.style import StyleMemory

    compiled = [getattr(kernels, name) for name in ("feed", "firsts", "head", "draw")]
    for loaded in (shipped, model):
        improviser = Improviser(loaded)
        improviser.warm_up()
        before = [set(kernel.signatures) for kernel in compiled]
        rng = np.random.default_rng(0)
        style = StyleMemory(loaded.bins.n_step)
        for i, pitch in enumerate(np.array([60, 62, 64, 65, 67], dtype=np.int32)):  # as a MIDI parser may give them
            improviser.observe(Event(pitch, 0.25 * (i > 0), 0.2, 70))
            style.learn(int(pitch), 3)
        snapshot = improviser.snapshot()
        for constraints, top_p, follow in [(None, None, 0.0), (Constraints(48, 72, (2, "minor"), 2), 0.9, 0.0),
                                           (Constraints(max_polyphony=1), None, 0.7)]:
            for _ in range(20):
                improviser.sample(0.8, rng, constraints, top_p, style=style, follow=follow)
            improviser.restore(snapshot)
        improviser.observe_tokens(tuple(np.array([62, 3, 4, 5], dtype=np.int64)))
        improviser.rebuild()
        strided = np.zeros(256, dtype=bool)[::2]
        strided[40:80] = True
        improviser.propose(1.2, rng, pitch_mask=strided)
        assert [set(kernel.signatures) for kernel in compiled] == before
