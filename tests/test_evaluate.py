"""`improv evaluate`: NLL per head against baselines, sample statistics, caching, errors; the study model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from improv import cli
from improv.training import baselines, evaluate, study
from improv.data.dataset import to_sequence
from improv.music.encoding import Bins
from improv.music.events import Note
from improv.midi.files import write_midi
from improv.model.network import ImprovNet, ModelConfig, export, load
from improv.training.train import evaluate_nll

HEADS = ["pitch", "step", "duration", "velocity"]


def phrase(root: int, repeats: int, velocity_step: int = 0) -> list[Note]:
    """A repetitive tune: the same 8-note figure with the same rhythm, and a chord every bar."""
    figure = [0, 2, 4, 5, 7, 5, 4, 2]
    rhythm = [0.25, 0.25, 0.5, 0.25, 0.25, 0.5, 0.5, 0.5]
    notes, t = [], 0.0
    for r in range(repeats):
        for i, (interval, length) in enumerate(zip(figure, rhythm)):
            notes.append(Note(root + interval, 60 + (velocity_step * i) % 40, t, length * 0.9))
            if i == 0:
                notes.append(Note(root - 12, 50, t, 1.5))
            t += length
    return notes


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImprovNet, Path]:
    torch.manual_seed(0)
    net = ImprovNet(ModelConfig(hidden=24, layers=2, embed=16, head_hidden=16)).eval()
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    export(net, path, {"minutes": 0.1})
    return net, path


@pytest.fixture
def midi_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Baseline data and evaluation data as MIDI files; the cache in a temporary directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    train, held_out = tmp_path / "train", tmp_path / "held_out"
    train.mkdir()
    held_out.mkdir()
    for root in (55, 60, 62):
        write_midi({"tune": phrase(root, 12, velocity_step=7)}, train / f"tune{root}.mid")
    for root in (57, 60):
        write_midi({"tune": phrase(root, 10, velocity_step=7)}, held_out / f"tune{root}.mid")
    return train, held_out


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert cli.main(["evaluate", *args, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)  # exactly one JSON object, nothing else on stdout


def test_cli_reports_every_head_and_caches(
    tiny_model: tuple[ImprovNet, Path], midi_dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, model_path = tiny_model
    train, held_out = midi_dirs
    args = (str(held_out), "--model", str(model_path), "--baseline-data", str(train), "--primers", "2", "--notes", "8")
    first = run_json(capsys, *args)

    for name in ("model", "unigram", "markov"):
        assert sorted(first[name]) == sorted([*HEADS, "event", "bits_per_second"]), name
        assert all(0 < first[name][h] < 20 and math.isfinite(first[name][h]) for h in HEADS)
        # the whole event is the sum of the heads along the model's own chain
        assert first[name]["event"] == pytest.approx(sum(first[name][h] for h in HEADS), rel=1e-12), name
    # every held-out work has dynamics here, so bits/s is event bits per event times events per second
    info = first["info"]
    assert info["velocity_events"] == info["events"]
    for name in ("model", "unigram", "markov"):
        expected = first[name]["event"] / math.log(2) * info["events"] / info["seconds_of_music"]
        assert first[name]["bits_per_second"] == pytest.approx(expected, rel=1e-3), name
    assert first["markov"]["event"] < first["unigram"]["event"] - 2  # a repetitive tune: context helps every head
    assert "event" not in first["markov_absolute"]  # pitch alone is not a whole event
    assert set(first["markov_absolute"]) == {"pitch"} and set(first["markov_interval"]) == {"pitch"}
    assert "study" not in first  # none trained for this trunk
    # An untrained network is near uniform; on a repetitive tune Markov is far better than counting tokens.
    assert first["model"]["pitch"] == pytest.approx(math.log(128), abs=0.3)
    for head in HEADS:
        assert first["markov"][head] < first["unigram"][head] - 0.5, head
    assert first["markov_interval"]["pitch"] < first["markov_absolute"]["pitch"]  # held-out tunes are transposed
    samples = first["samples"]
    assert samples["excerpts"] == 2 and samples["notes"] == 8
    assert samples["real"]["polyphony"] > 1.0  # the bass note rings under the figure
    assert 0 <= samples["pitch_class_tv"] <= 1 and 0 <= samples["ioi_tv"] <= 1
    assert samples["pitch_class_tv_primer"] < 0.2  # the same figure, again and again
    assert first["info"]["works"] == 2 and first["info"]["events"] == 2 * 10 * 9
    # 10 bars of 3 s each, the last bar's bass note (1.5 s) ends before its figure does (2.95 s)
    assert first["info"]["seconds_of_music"] == pytest.approx(2 * (9 * 3 + 2.95), abs=0.01)

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("a second run must come from the cache")

    monkeypatch.setattr(baselines, "fit_baselines", fail)
    for name in ("model_nll", "compare_continuations"):
        monkeypatch.setattr(evaluate, name, fail)
    second = run_json(capsys, *args)
    first["info"].pop("seconds")
    second["info"].pop("seconds")
    assert second == first


def test_cached_study_model_is_reported_with_pitch_only(
    tiny_model: tuple[ImprovNet, Path], midi_dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    net, model_path = tiny_model
    train, held_out = midi_dirs
    seqs = evaluate.sequences_from_files([train])
    config = study.StudyConfig.like(load(model_path).config)
    assert (config.hidden, config.layers, config.embed) == (24, 2, 16)
    path = study.train_study_model(seqs, seqs, minutes=0.2, config=config, batch=4, length=16, epochs=2)
    assert path == study.study_model_path(config) and path.is_file()
    result = run_json(capsys, str(held_out), "--model", str(model_path), "--baseline-data", str(train), "--primers", "0")
    assert set(result["study"]) == {"pitch"} and 0 < result["study"]["pitch"] < 6
    assert "samples" not in result
    assert cli.main(["evaluate", str(held_out), "--model", str(model_path), "--baseline-data", str(train),
                     "--primers", "0"]) == 0
    table = capsys.readouterr().out
    assert "study-style" in table and "unigram" in table and "Markov orders" in table
    header = next(line for line in table.splitlines() if line.startswith("NLL, nats/event"))
    assert header.split()[-2:] == ["event", "bits/s"]
    model_row = next(line for line in table.splitlines() if line.startswith("model" + " " * 30))
    assert float(model_row.split()[-2]) == pytest.approx(sum(float(v) for v in model_row.split()[1:5]), abs=2e-3)
    study_row = next(line for line in table.splitlines() if line.startswith("study-style"))
    assert study_row.split()[-2:] == ["-", "-"]  # pitch only: no whole event
    assert "conditioned on: model: step | past events; pitch | past, step;" in table
    assert "Markov: each head | its own previous tokens only" in table


@pytest.mark.parametrize(
    ("scores", "events", "velocity_events", "seconds", "event", "bits_per_second"),
    [
        ({"pitch": 2.0, "step": 1.0, "duration": 0.5, "velocity": 0.5}, 10, 10, 10.0, 4.0, 4.0 / math.log(2)),
        # velocity scored on half the events: it counts fully per event, half in the total
        ({"pitch": 2.0, "step": 1.0, "duration": 0.5, "velocity": 1.0}, 10, 5, 5.0, 4.5, 40.0 / math.log(2) / 5),
        ({"pitch": 2.0, "step": 1.0, "duration": 1.0}, 4, 0, 2.0, 4.0, 8.0 / math.log(2)),  # no dynamics in the set
    ],
)
def test_event_totals(scores: dict, events: int, velocity_events: int, seconds: float, event: float,
                      bits_per_second: float) -> None:
    out = evaluate.add_event_totals(scores, events, velocity_events, seconds)
    assert out["event"] == pytest.approx(event) and out["bits_per_second"] == pytest.approx(bits_per_second)
    assert {h: out[h] for h in scores} == scores  # per-head keys kept as they were
    assert "event" not in evaluate.add_event_totals({"pitch": 2.0}, events, velocity_events, seconds)


def test_music_seconds_runs_from_first_onset_to_last_end() -> None:
    notes = [Note(60, 80, 1.0, 0.5), Note(64, 80, 1.0, 3.0), Note(67, 80, 2.0, 0.5)]
    assert evaluate.music_seconds(to_sequence("a", notes)) == pytest.approx(3.0)  # the long note ends last
    assert evaluate.music_seconds(to_sequence("b", [])) == 0.0


def test_out_of_corpus_set_is_selected_by_flag(
    tiny_model: tuple[ImprovNet, Path], midi_dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, model_path = tiny_model
    train, held_out = midi_dirs
    tunes = evaluate.sequences_from_files([held_out])[:1]
    monkeypatch.setattr(evaluate, "out_of_corpus_set", lambda say: tunes)
    result = run_json(capsys, "--set", "out-of-corpus", "--model", str(model_path), "--baseline-data", str(train),
                      "--primers", "0")
    assert result["info"]["data"].startswith("out-of-corpus set") and result["info"]["works"] == 1
    assert result["info"]["events"] == len(tunes[0])
    assert set(result["model"]) >= {"event", "bits_per_second"}


def test_study_model_trains_saves_and_loads(tmp_path: Path) -> None:
    seqs = [to_sequence("a", phrase(60, 6)), to_sequence("b", phrase(64, 6))]
    config = study.StudyConfig(hidden=16, layers=1, embed=8, head_hidden=8, dropout=0.0)
    path = study.train_study_model(seqs, seqs, minutes=10, config=config, out_path=tmp_path / "s.pt",
                                   batch=4, length=16, epochs=40)
    net, summary = study.load(path)
    assert summary["epochs_run"] == 40 and summary["best_epoch"] >= 1
    scores = study.evaluate_study(net, seqs)
    assert scores["pitch"] == pytest.approx(summary["valid"]["pitch"], abs=1e-3)
    assert scores["pitch"] < math.log(128) - 1  # it learned something about pitch
    assert scores["step_mse"] >= 0 and scores["duration_mse"] >= 0
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(study.ModelFileError, match="not a study model"):
        study.load(tmp_path / "bad.pt")
    assert study._main(["--model", str(tmp_path / "missing.pt")]) == 2


def test_model_scores_match_the_training_network(tiny_model: tuple[ImprovNet, Path]) -> None:
    """The network rebuilt from the TorchScript file scores exactly like the one that was exported."""
    net, path = tiny_model
    seqs = [to_sequence("a", phrase(60, 3), has_velocity=True), to_sequence("b", phrase(50, 2), has_velocity=False)]
    expected = evaluate_nll(net, seqs, torch.device("cpu"))
    got = evaluate.model_nll(load(path), seqs)
    assert got == pytest.approx(expected, rel=1e-6)


def test_errors_are_one_line(
    tiny_model: tuple[ImprovNet, Path], midi_dirs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model_path = tiny_model
    train, held_out = midi_dirs
    assert cli.main(["evaluate", str(held_out), "--model", str(tmp_path / "nope.pt")]) == 2
    assert "nope.pt: no such model file" in capsys.readouterr().err
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"this is not MIDI")
    assert cli.main(["evaluate", str(junk), "--model", str(model_path), "--baseline-data", str(train)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("improv: no readable MIDI notes in") and "1 files skipped" in err[-1]
    assert cli.main(["evaluate", str(tmp_path / "missing"), "--model", str(model_path)]) == 2
    assert "missing: no such file or folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("notes", "expected"),
    [
        ([], 0.0),
        ([Note(60, 80, 0.0, 1.0)], 1.0),
        ([Note(60, 80, 0.0, 1.0), Note(64, 80, 0.0, 1.0), Note(67, 80, 0.5, 0.5)], 2.5),  # 2 at 0 s, 3 at 0.5 s
        ([Note(60, 80, 0.0, 0.5), Note(62, 80, 0.5, 0.5)], 1.0),  # a note ending as the next starts is over
        ([Note(60, 80, 0.0, 0.0), Note(62, 80, 0.0, 0.0)], 2.0),  # zero-length notes still sound at their onset
    ],
)
def test_polyphony(notes: list[Note], expected: float) -> None:
    assert evaluate.polyphony(notes) == expected


def test_histograms_and_distances() -> None:
    c_major = [Note(p, 80, i * 0.5, 0.4) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72])]
    histogram = evaluate.pitch_class_histogram(c_major)
    assert histogram[0] == 0.25 and histogram[1] == 0 and math.isclose(histogram.sum(), 1.0)
    f_sharp = [Note(n.pitch + 6, 80, n.start, n.duration) for n in c_major]
    assert evaluate.total_variation(histogram, histogram) == 0.0
    assert 0.5 < evaluate.total_variation(histogram, evaluate.pitch_class_histogram(f_sharp)) <= 1.0
    assert evaluate.total_variation(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == 1.0
    bins = Bins()
    chord_then_beat = [Note(60, 80, 0.0, 0.5), Note(64, 80, 0.0, 0.5), Note(67, 80, 0.5, 0.5)]
    counts = evaluate.step_histogram(chord_then_beat, bins)
    assert counts.sum() == 2 and counts[0] == 1 and counts[bins.step_bin(0.5)] == 1
    stats = evaluate.music_statistics([c_major])
    assert stats["pitch_min"] == 60 and stats["pitch_max"] == 72 and stats["ioi_median_s"] == 0.5
