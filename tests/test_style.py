"""Session style memory: it learns the player's motifs and `follow` brings them back."""

from __future__ import annotations

import numpy as np
import pytest

from improv.live.engine import Engine, EngineSettings, Message, StateChanged
from improv.music.events import Event
from improv.model.rolling_seed import Improviser
from improv.model.shipped import resolve_model
from improv.model.style import StyleMemory, blend, check_follow

# A motif no notated corpus suggests: odd leaps and an uneven rhythm (pitch, step s).
MOTIF = [(60, 0.2), (66, 0.1), (61, 0.3), (71, 0.1), (63, 0.2)]
MOTIF_MOVES = {(MOTIF[i][0], MOTIF[(i + 1) % len(MOTIF)][0]) for i in range(len(MOTIF))}


@pytest.fixture(scope="module")
def shipped():
    return resolve_model(None)


def test_blend_is_the_model_at_0_and_the_memory_at_1() -> None:
    model = np.array([0.7, 0.2, 0.1])
    memory = np.array([0.0, 0.1, 0.9])
    assert np.allclose(blend(model, memory, 0.0), model)
    assert np.allclose(blend(model, memory, 1.0), memory)
    assert np.allclose(blend(model, memory, 0.5), [0.35, 0.15, 0.5])
    with pytest.raises(ValueError, match="follow"):
        check_follow(1.5)


def test_the_memory_predicts_what_the_player_repeats() -> None:
    style = StyleMemory(n_step=32)
    for _ in range(4):
        for pitch, step in [(60, 5), (64, 7), (67, 9)]:
            style.learn(pitch, step)
    context = [style.token(60, 5), style.token(64, 7)]
    joint = style.joint(context)
    assert joint.shape == (128, 32)
    assert np.unravel_index(joint.argmax(), joint.shape) == (67, 9)
    assert joint[67, 9] > 0.5 and joint.sum() == pytest.approx(1.0)
    assert style.matched_order(context) >= 2
    assert style.matched_order([style.token(10, 1)]) <= 0  # never seen: nothing to say


def motif_share(shipped, follow: float, seeds: int = 12, notes: int = 8) -> float:
    """How often consecutive answer notes move as the motif does, after the player played it 6 times."""
    improviser = Improviser(shipped)
    style = StyleMemory(improviser.bins.n_step)
    for _ in range(6):
        for pitch, step in MOTIF:
            improviser.observe(Event(pitch, step, 0.1, 80))
            style.learn(*improviser.seed[-1][:2])
    snapshot = improviser.snapshot()
    hits = total = 0
    for seed in range(seeds):
        improviser.restore(snapshot)
        rng = np.random.default_rng(seed)
        last = MOTIF[-1][0]
        for _ in range(notes):
            pitch = improviser.sample(1.0, rng, style=style, follow=follow).event.pitch
            hits += (last, pitch) in MOTIF_MOVES
            total += 1
            last = pitch
    return hits / total


def test_follow_1_brings_the_players_motif_back_far_more_often_than_follow_0(shipped) -> None:
    alone = motif_share(shipped, 0.0)
    following = motif_share(shipped, 1.0)
    assert following > 0.8
    assert following > 3 * alone


def test_the_engine_learns_the_players_notes_and_takes_follow_commands(tiny_model) -> None:
    engine = Engine(tiny_model, lambda data: None, EngineSettings(follow=0.25, random_seed=1), clock=lambda: 0.0)
    assert engine.follow == 0.25
    for i, pitch in enumerate([60, 62, 64]):
        engine.push([0x90, pitch, 90], 1.0 + i * 0.2)
        engine.push([0x80, pitch, 0], 1.1 + i * 0.2)
    engine.process(2.0)
    assert engine.style.events == 3
    engine.command("follow", 0.8)
    engine.command("follow_step", 0.5)
    engine.command("follow", 7)  # out of range: a message, not a crash
    engine.process(2.1)
    seen = []
    while not engine.events.empty():
        seen.append(engine.events.get())
    states = [e for e in seen if isinstance(e, StateChanged)]
    assert [s.follow for s in states] == [0.8, 1.0]
    assert any(isinstance(e, Message) and "follow" in e.text for e in seen)
    assert engine.follow == 1.0
    with pytest.raises(ValueError, match="follow"):
        EngineSettings(follow=-0.1)


def test_what_the_memory_does_not_know_is_left_to_the_model() -> None:
    style = StyleMemory(n_step=32)
    phrase = [(60, 5), (64, 7), (67, 9)]
    for pitch, step in phrase * 2:
        style.learn(pitch, step)
    context = [style.token(*e) for e in (phrase[2], phrase[0], phrase[1])]  # seen once, mid-stream
    seen, floor = style.seen(context)
    assert np.allclose(seen + floor / seen.size, style.joint(context))
    assert 0.0 < floor < 1.0 and seen.sum() == pytest.approx(1.0 - floor)


def test_after_one_phrase_follow_1_still_sounds_like_the_model(shipped) -> None:
    """Heard once, a phrase is too little to play from alone: no random leaps over the keyboard."""
    improviser = Improviser(shipped)
    style = StyleMemory(improviser.bins.n_step)
    for pitch in [60, 62, 64, 65, 67, 65, 64, 62]:
        improviser.observe(Event(pitch, 0.25, 0.2, 80))
        style.learn(*improviser.seed[-1][:2])
    snapshot = improviser.snapshot()
    pitches = []
    for seed in range(8):
        improviser.restore(snapshot)
        rng = np.random.default_rng(seed)
        pitches += [improviser.sample(1.0, rng, style=style, follow=1.0).event.pitch for _ in range(8)]
    # measured: 0 of 64 outside 43-84, spread 5.2; a memory backing off to chance gave 6 of 64 (13-101), 12.1
    assert sum(not 43 <= p <= 84 for p in pitches) <= 1
    assert np.std(pitches) < 8.0


def test_a_pause_starts_a_new_phrase_in_the_memory(tiny_model) -> None:
    """The memory learns phrases, not the pauses between them: no context crosses a gap."""
    engine = Engine(tiny_model, lambda data: None, EngineSettings(gap_s=0.3, random_seed=1), clock=lambda: 0.0)
    engine.command("pause", True)  # no answers in between: only the player's notes
    for t, pitch in [(1.0, 60), (1.2, 62), (1.4, 64), (3.0, 67)]:
        engine.push([0x90, pitch, 90], t)
        engine.push([0x80, pitch, 0], t + 0.1)
    engine.process(4.0)
    assert engine.style.events == 4
    history = engine.style.model.history
    assert history[-1] >= 0 and all(token < 0 for token in history[:-1])  # only the new phrase's first note


def test_the_memory_keeps_the_recent_player_and_stays_bounded() -> None:
    """An evening of playing: the memory holds between `capacity` and twice that, and what the player
    stopped playing long ago is forgotten while what they play now is known."""
    style = StyleMemory(n_step=32, capacity=50)
    old = [(60, 4), (62, 4), (64, 4)]
    new = [(70, 8), (72, 8), (75, 8)]
    for _ in range(20):  # 60 events of an old motif
        for pitch, step in old:
            style.learn(pitch, step)
    assert style.matched_order(style.context(old)) > 0
    for _ in range(100):  # then 300 events of a new one
        for pitch, step in new:
            style.learn(pitch, step)
    assert 50 <= style.events <= 100
    joint = style.joint(style.context(new * 2))
    assert joint[70, 8] > 0.5  # after ...75, 70 comes again
    assert style.matched_order(style.context(old * 2)) <= 0  # the old motif is gone


def test_the_memory_does_not_grow_with_the_evening() -> None:
    """Ever-new material (every context new): the contexts held stay within what 2 x capacity events make."""
    rng = np.random.default_rng(3)
    style = StyleMemory(n_step=32, capacity=50)
    for pitch, step in zip(rng.integers(40, 90, 3000), rng.integers(0, 32, 3000)):
        style.learn(int(pitch), int(step))
    assert style.events <= 100
    assert style.model.context_count() <= 100 * (style.order + 1)  # unbounded, 3000 events make ~15,000
