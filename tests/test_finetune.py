"""Fine-tuning on a player's saved sessions: the model learns that player's style."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from improv.cli import main
from improv.data.dataset import load_midi_files, to_sequence
from improv.training.evaluate import model_nll
from improv.music.events import Note
from improv.midi.files import write_midi
from improv.model.network import load
from improv.model.shipped import default_model_path

pytestmark = pytest.mark.slow

WHOLE_TONE = [58, 60, 62, 64, 66, 68, 70, 72]


def player_phrase(rng: np.random.Generator, start: float) -> list[Note]:
    """This player's habit: whole-tone runs up and down in a long-short swing, an octave dyad to end."""
    notes, t = [], start
    i = int(rng.integers(0, 4))
    for k in range(int(rng.integers(6, 10))):
        i = min(max(i + int(rng.choice([-1, 1, 1, 2])), 0), len(WHOLE_TONE) - 1)
        long = k % 2 == 0
        notes.append(Note(WHOLE_TONE[i], 90 if long else 70, t, 0.28 if long else 0.12))
        t += 0.3 if long else 0.15
    notes.append(Note(WHOLE_TONE[i] - 12, 80, t, 0.6))
    notes.append(Note(WHOLE_TONE[i], 80, t, 0.6))
    return notes


def write_sessions(folder: Path, count: int, seed: int) -> list[Path]:
    """Saved sessions as `s` writes them: the player's track and improv's (random) answers."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        player, improv, t = [], [], 0.0
        for _ in range(8):
            phrase = player_phrase(rng, t)
            player += phrase
            t = phrase[-1].start + 1.0
            for _ in range(6):  # the answers: nothing like the player, and not to be learnt
                improv.append(Note(int(rng.integers(40, 90)), 64, t, 0.2))
                t += float(rng.choice([0.1, 0.5, 0.7]))
            t += 0.5
        path = folder / f"session-{n:02d}.mid"
        write_midi({"player": player, "improv": improv}, path)
        paths.append(path)
    return paths


def test_finetuning_on_saved_sessions_lowers_nll_on_held_out_sessions(tmp_path: Path) -> None:
    write_sessions(tmp_path / "sessions", 10, seed=1)
    write_sessions(tmp_path / "later", 3, seed=2)
    held_out = [to_sequence(name, notes) for name, notes in load_midi_files([tmp_path / "later"], player_only=True)[0]]
    out = tmp_path / "mine.pt"
    code = main(["train", "--finetune", str(default_model_path()), str(tmp_path / "sessions"), "--out", str(out),
                 "--no-guard", "--epochs", "6", "--lr", "1e-3", "--batch", "8", "--length", "64", "--threads", "2"])
    assert code == 0
    base = model_nll(load(default_model_path()), held_out)
    tuned_model = load(out)
    tuned = model_nll(tuned_model, held_out)
    assert tuned["pitch"] < base["pitch"] - 0.3
    assert sum(tuned.values()) < sum(base.values()) - 0.5
    # same interface: a model file like any other, remembering where it came from
    base_config = load(default_model_path()).config
    assert {k: tuned_model.config[k] for k in base_config} == base_config
    assert tuned_model.summary["finetuned_from"] == str(default_model_path())


def test_player_only_reads_just_the_players_track(tmp_path: Path) -> None:
    [path] = write_sessions(tmp_path, 1, seed=3)
    [(_, mine)], _ = load_midi_files([path], player_only=True)
    [(_, everything)], _ = load_midi_files([path])
    assert len(mine) < len(everything)
    assert {n.pitch for n in mine} <= set(WHOLE_TONE) | {p - 12 for p in WHOLE_TONE}


def test_finetune_needs_files(capsys) -> None:
    assert main(["train", "--finetune", str(default_model_path())]) == 2
    assert "--finetune needs the files" in capsys.readouterr().err


def test_the_guard_set_is_watched_and_recorded(tiny_model, tmp_path: Path) -> None:
    import json

    from improv.model.network import network_from
    from improv.training.train import TrainSettings, train

    rng = np.random.default_rng(4)
    mine = [to_sequence(f"s{i}", player_phrase(rng, 0.0) * 1) for i in range(6)]
    scale = [Note(60 + s, 80, 0.25 * i, 0.2) for i, s in enumerate([0, 2, 4, 5, 7, 9, 11, 12] * 4)]
    guard = [to_sequence("scale", scale)]
    net = network_from(tiny_model)
    out = tmp_path / "tuned.pt"
    result = train(mine[:5], mine[5:], out, net.config, TrainSettings(epochs=3, batch=4, length=16, lr=1e-3),
                   init_state=net.state_dict(), guard_seqs=guard)
    assert result.best_guard is not None and result.best_guard > 0
    assert load(out).summary["guard_nll_total"] == pytest.approx(result.best_guard, abs=1e-3)
    assert json.loads((tmp_path / "tuned.run" / "summary.json").read_text())["guard_nll_total"] > 0
