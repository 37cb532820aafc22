"""Training data helpers: tunes joined into medleys."""

from __future__ import annotations

import pytest

from improv.data.dataset import join_tunes
from improv.music.events import Note


def tune(start: float, pitches: list[int]) -> list[Note]:
    return [Note(p, 80, start + 0.5 * i, 0.4) for i, p in enumerate(pitches)]


def test_tunes_of_one_file_are_joined_in_order_with_a_gap() -> None:
    tunes = [("f/a#1", tune(3.0, [60, 62])), ("f/a#2", tune(0.0, [64, 65, 67])), ("f/b#1", tune(0.0, [70]))]
    medleys = join_tunes(tunes, max_events=100, gap_s=1.0)
    assert [m.name for m in medleys] == ["f/a#1", "f/b#1"]  # never across files
    first = medleys[0]
    assert first.pitch.tolist() == [60, 62, 64, 65, 67]
    # the second tune starts 1 s after the first one's last note ends (0.5 + 0.4)
    assert first.step.tolist() == pytest.approx([0.0, 0.5, 1.4, 0.5, 0.5])
    assert not first.has_velocity  # no dynamics in the tunes: velocity is not trained on


def test_medleys_stop_at_max_events() -> None:
    tunes = [(f"f/a#{i}", tune(0.0, [60, 62, 64])) for i in range(5)]
    medleys = join_tunes(tunes, max_events=7)
    assert [len(m) for m in medleys] == [6, 6, 3]
    assert sum(len(m) for m in medleys) == 15


def test_sampler_weights_set_each_collection_s_share_of_windows() -> None:
    from improv.data.dataset import WindowSampler, to_sequence
    from improv.music.encoding import Bins

    long_work = to_sequence("work", tune(0.0, [60] * 300))
    tunes = [to_sequence(f"t{i}", tune(0.0, [72] * 30)) for i in range(10)]  # as many events as the work
    sampler = WindowSampler([long_work, *tunes], Bins(), length=16, seed=0, augment=False,
                            weights=[0.75 / 300] + [0.25 / 300] * 10)
    drawn = [int(sampler.window()[1, 0]) for _ in range(2000)]
    assert 0.2 < drawn.count(72) / len(drawn) < 0.3  # a quarter from the tunes, not a half
    with pytest.raises(ValueError, match="2 weights for 11 sequences"):
        WindowSampler([long_work, *tunes], Bins(), length=16, seed=0, weights=[1.0, 1.0])


def test_a_finished_run_resumed_with_more_epochs_trains_them_all(tmp_path) -> None:
    from improv.data.dataset import to_sequence
    from improv.model.network import ModelConfig
    from improv.training.train import TrainSettings, train

    seqs = [to_sequence(f"w{i}", tune(0.0, [60 + (j * (i + 2)) % 12 for j in range(40)])) for i in range(3)]
    config = ModelConfig(hidden=8, layers=1, embed=8, head_hidden=8)
    out = tmp_path / "m.pt"
    first = train(seqs, seqs, out, config, TrainSettings(epochs=2, batch=2, length=16, minutes=5, patience=99))
    assert len(first.history) == 2 and first.stopped_because == "2 epochs done"
    again = train(seqs, seqs, out, config, TrainSettings(epochs=4, batch=2, length=16, minutes=5, patience=99),
                  resume=True)
    assert [r.epoch for r in again.history] == [1, 2, 3, 4] and again.stopped_because == "4 epochs done"
