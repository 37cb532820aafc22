"""The network, its single-step twin, the TorchScript file and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from improv import ModelFileError
from improv.data.dataset import encode_sequence, split_batch, to_sequence
from improv.music.encoding import START_PITCH, Bins
from improv.music.events import Note
from improv.model import sampling
from improv.model.network import HEADS, ImprovNet, ModelConfig, export, load


@pytest.fixture(scope="module", params=["absolute", "relative", "rhythm-lstm", "lean"])
def small_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[ImprovNet, Path]:
    torch.manual_seed(0)
    relative = request.param != "absolute"
    rhythm = 20 if request.param in ("rhythm-lstm", "lean") else 0
    net = ImprovNet(ModelConfig(hidden=48, layers=2, embed=24, head_hidden=32, relative_pitch=relative,
                                rhythm_hidden=rhythm, rhythm_grad=0.0 if rhythm else 1.0,
                                lean_inputs=request.param == "lean")).eval()
    if relative:  # trained weights are not zero: make the interval parts matter in the test
        with torch.no_grad():
            net.pitch_interval_out.weight.normal_(0, 0.5)
    path = tmp_path_factory.mktemp("model") / "small.pt"
    export(net, path, {"note": "test"})
    return net, path


def test_bins_encode_and_decode_round_trip_on_centres() -> None:
    bins = Bins()
    for i, centre in enumerate(bins.step_s):
        assert bins.step_bin(centre) == i
    for i, centre in enumerate(bins.duration_s):
        assert bins.duration_bin(centre) == i
    assert bins.step_bin(0.0) == 0 and bins.step_bin(0.004) == 0 and bins.step_bin(0.01) == 1
    assert bins.step_bin(100.0) == bins.n_step - 1
    assert [bins.velocity_bin(v) for v in (1, 8, 9, 127)] == [0, 0, 1, bins.n_velocity - 1]
    steps = np.array([0.0, 0.003, 0.01, 0.25, 0.3, 50.0])
    vector, _, _ = bins.encode_arrays(steps, steps, np.array([1] * 6))
    assert list(vector) == [bins.step_bin(s) for s in steps]


def test_step_model_matches_the_sequence_network(small_model: tuple[ImprovNet, Path]) -> None:
    """The live single-step cell must give the same logits as nn.LSTM over the whole sequence."""
    net, path = small_model
    module = load(path).module
    notes = [Note(60 + (i * 7) % 12, 40 + i, i * 0.25 * (i % 3 > 0), 0.2 + 0.1 * (i % 4)) for i in range(12)]
    tokens = torch.from_numpy(encode_sequence(to_sequence("t", notes), net.config.binning))[None]
    inputs, targets, _, _ = split_batch(tokens)
    with torch.no_grad():
        full = net(inputs, targets)
        state = module.initial_state()
        for t in range(tokens.shape[1] - 1):
            p, s, d, v = (int(x) for x in tokens[0, t, :4])
            state = module.feed(state, p, s, d, v)
            tp, ts, td = (int(x) for x in tokens[0, t + 1, :3])
            torch.testing.assert_close(module.step_logits(state), full["step"][0, t], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(module.pitch_logits(state, ts), full["pitch"][0, t], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(module.duration_logits(state, ts, tp), full["duration"][0, t], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(
                module.velocity_logits(state, ts, tp, td), full["velocity"][0, t], atol=1e-5, rtol=1e-4
            )


def test_numpy_step_gives_the_files_probabilities(small_model: tuple[ImprovNet, Path]) -> None:
    """improv plays with a numpy step rebuilt from the file's weights: its states and its heads'
    distributions are those of the TorchScript step inside the file, to float rounding."""
    _, path = small_model
    model = load(path)
    step, module = model.step, model.module
    state, reference = step.initial_state(), module.initial_state()
    events = [(START_PITCH, 0, 0, 9)] + [(40 + (i * 7) % 50, i % 5, (i * 3) % 11, i % 16) for i in range(16)]
    with torch.no_grad():
        for p, s, d, v in events:
            state, reference = step.feed(state, p, s, d, v), module.feed(reference, p, s, d, v)
            np.testing.assert_allclose(state, reference.numpy(), atol=1e-5)
            pairs = [
                (step.step_logits(state), module.step_logits(reference)),
                (step.pitch_logits(state, s), module.pitch_logits(reference, s)),
                (step.duration_logits(state, s, p % 128), module.duration_logits(reference, s, p % 128)),
                (step.velocity_logits(state, s, p % 128, d), module.velocity_logits(reference, s, p % 128, d)),
            ]
            for ours, theirs in pairs:
                assert ours.dtype == np.float32 and ours.shape == tuple(theirs.shape)
                for temperature in (0.5, 1.0, 2.0):
                    np.testing.assert_allclose(sampling.probabilities(ours, temperature),
                                               sampling.probabilities(theirs.numpy(), temperature), atol=1e-6)


@pytest.mark.parametrize("bad", ["pitch", "step", "duration", "velocity"])
def test_a_token_out_of_range_raises_instead_of_reading_past_a_table(small_model: tuple[ImprovNet, Path], bad: str) -> None:
    """The step is compiled, and compiled code does not check bounds: it must check them itself."""
    step = load(small_model[1]).step
    state = step.feed(step.initial_state(), 60, 1, 1, 1)
    tokens = {"pitch": 60, "step": 1, "duration": 1, "velocity": 1} | {bad: 10_000}
    with pytest.raises(IndexError):
        step.feed(state, *tokens.values())
    if bad != "velocity":  # no head is conditioned on the velocity
        with pytest.raises(IndexError):
            step.velocity_logits(state, tokens["step"], tokens["pitch"], tokens["duration"])
    assert np.isfinite(step.velocity_logits(state, 1, 60, 1)).all()


def test_file_carries_bins_config_and_summary(small_model: tuple[ImprovNet, Path]) -> None:
    net, path = small_model
    loaded = load(path)
    assert loaded.bins == net.config.binning
    assert loaded.config["hidden"] == 48 and loaded.summary == {"note": "test"}
    assert json.loads(loaded.module.bins_json)["step_s"] == list(net.config.binning.step_s)
    assert loaded.module.format == "improv-lstm"


def test_file_works_with_only_torch(small_model: tuple[ImprovNet, Path], tmp_path: Path) -> None:
    """A Python with torch and nothing of improv can feed events and read logits."""
    _, path = small_model
    code = (
        "import sys, torch;"
        "m = torch.jit.load(sys.argv[1]);"
        "s = m.initial_state(); s = m.feed(s, m.start_pitch, 0, 0, 9); s = m.feed(s, 60, 5, 8, 9);"
        "print(m.step_logits(s).shape[0], m.pitch_logits(s, 3).shape[0], m.duration_logits(s, 3, 60).shape[0],"
        " m.velocity_logits(s, 3, 60, 8).shape[0])"
    )
    out = subprocess.run([sys.executable, "-I", "-c", code, str(path)], capture_output=True, text=True, check=True, cwd=tmp_path)
    bins = Bins()
    assert out.stdout.split() == [str(bins.n_step), "128", str(bins.n_duration), str(bins.n_velocity)]


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"PK\x03\x04garbage"])
def test_wrong_files_give_one_line_model_file_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ModelFileError) as caught:
        load(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert "not a TorchScript file" in str(caught.value)
    assert "not a ZIP archive" in str(caught.value)  # why (torch, given bytes, told of its stream position)


def test_torchscript_file_that_is_not_improv_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(ModelFileError, match="not an improv model"):
        load(path)


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no such model file"):
        load(tmp_path / "nope.pt")
    with pytest.raises(ModelFileError, match="a directory, not a model file"):
        load(tmp_path)


def test_heads_are_all_categorical(small_model: tuple[ImprovNet, Path]) -> None:
    net, _ = small_model
    tokens = torch.zeros(1, 3, 5, dtype=torch.long)
    tokens[0, 0, 0] = START_PITCH
    inputs, targets, _, _ = split_batch(tokens)
    out = net(inputs, targets)
    assert set(out) == set(HEADS)
    bins = net.config.binning
    assert [out[h].shape[-1] for h in HEADS] == [bins.n_step, 128, bins.n_duration, bins.n_velocity]


def test_a_file_played_again_comes_from_the_cache_without_torch(small_model: tuple[ImprovNet, Path], tmp_path: Path) -> None:
    """The first load rebuilds the weights with torch and caches them; a later process plays the same
    file with numpy only (torch is ~200 MB and a second of start-up), and steps exactly alike."""
    _, path = small_model
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    code = (
        "import sys, json, numpy as np;"
        "from improv.model.model_file import load;"
        "import improv.live.session, improv.cli.play, improv.tui.app;"  # all a playing process imports
        "m = load(sys.argv[1]); s = m.step.feed(m.step.initial_state(), 60, 3, 4, 5);"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'pitch': m.step.pitch_logits(s, 3).tolist()}))"
    )
    runs = [json.loads(subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                                      check=True, env=env).stdout) for _ in range(2)]
    assert runs[0]["torch"] and not runs[1]["torch"]
    assert runs[0]["pitch"] == runs[1]["pitch"]
    assert len(list((tmp_path / "cache" / "improv" / "models").glob("*.npz"))) == 1


def test_a_broken_or_unwritable_cache_only_costs_time(small_model: tuple[ImprovNet, Path], tmp_path: Path) -> None:
    _, path = small_model
    cache = tmp_path / "cache"
    reference = load(path, cache_dir=cache)
    (entry,) = cache.glob("*.npz")
    entry.write_bytes(entry.read_bytes()[:200])  # cut short, as by a full disk
    again = load(path, cache_dir=cache)
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    unwritable = load(path, cache_dir=blocked / "models")
    state = reference.step.feed(reference.step.initial_state(), 60, 3, 4, 5)
    for model in (again, unwritable):
        np.testing.assert_array_equal(model.step.step_logits(state), reference.step.step_logits(state))
    assert entry.stat().st_size > 200  # rewritten whole
    assert load(path, cache_dir=cache).module.format == "improv-lstm"  # the TorchScript module, on demand
