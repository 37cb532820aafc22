"""The answer planner: its rules as pure functions, the plan they make, and answers on the fake clock.

The tiny model draws pitches and steps almost uniformly, so whatever shape its answers have comes
from the planner: each engine test below fails when its rule is taken out of `Plan`.
"""

from __future__ import annotations

import statistics

import pytest

from improv.live.call import CallNote, describe_call, hands_split, scale_of
from improv.live.engine import AnswerPlanned, Engine, EngineSettings
from improv.live.planner import Plan, PlannedConstraints, PlanSettings, narrow
from improv.live.rules import (
    accent_rule,
    answer_length,
    bass_rule,
    below_rule,
    first_note_rule,
    key_rule,
    motif_due,
    motif_rule,
    onset_size,
    pace_rule,
    quote_rule,
    repeat_rule,
    register_rule,
    time_scale,
)
from improv.model.rolling_seed import Constraints
from improv.music.encoding import Bins
from test_engine import Clock, Port, events, play, run_until

STEPS = Bins().step_s
C_MAJOR = scale_of((0, "major"))


def call_of(pitches, step_s=0.25, chords=None):
    notes = [CallNote(i * step_s, p, step_s * 0.8) for i, p in enumerate(pitches)]
    for i, chord in enumerate(chords or []):
        notes += [CallNote(i * step_s, p, step_s * 0.8) for p in chord]
    call = describe_call(notes)
    assert call is not None
    return call


def plan_of(call, **settings):
    return Plan(call, PlanSettings(**settings), 16, STEPS, 1.0)


# -- the call ------------------------------------------------------------------------------


def test_a_call_is_described_by_its_onsets_key_pulse_and_hands() -> None:
    call = call_of([60, 62, 64, 65, 67, 65, 64, 62, 60])
    assert call.onsets[0] == (60,) and call.notes == 9 and call.ioi_s == pytest.approx(0.25)
    assert call.key == (0, "major") and call.split is None and call.top_line[-1] == 60
    hands = [CallNote(0.0, 48, 1.0), CallNote(0.0, 72, 0.2), CallNote(0.25, 74, 0.2), CallNote(0.5, 43, 1.0),
             CallNote(0.5, 76, 0.2), CallNote(0.75, 72, 0.2)]
    two = describe_call(hands)
    assert two is not None and two.split == 72 and two.bass_line == [48, 43] and two.top_line == [72, 74, 76, 72]
    assert hands_split([(60,), (72,), (60,), (74,)]) is None  # leaps in one line are not two hands


# -- each rule, pure ---------------------------------------------------------------------------


def test_key_rule_keeps_the_scale_until_the_share_allows_a_note_outside() -> None:
    allowed = key_rule(C_MAJOR, 0, 16, 1.0)
    assert allowed is not None and 61 not in allowed and 60 in allowed
    assert key_rule(C_MAJOR, 0, 16, 0.9) is None  # one note of 16 may leave the scale
    assert key_rule(C_MAJOR, 1, 16, 0.9) is not None  # not a second
    assert key_rule(frozenset(range(12)), 0, 16, 1.0) is None


def test_register_rule_is_a_window_around_the_call_and_turns_a_drifting_answer_back() -> None:
    assert register_rule(64, 8, [], 4, 12) == frozenset(range(54, 75))
    assert max(register_rule(64, 8, [70, 71, 69], 4, 12)) == 64  # drifted up: the next note at or below
    assert min(register_rule(64, 8, [58, 57], 4, 12)) == 64
    assert register_rule(64, 8, [65, 63], 4, 12) == frozenset(range(54, 75))


def test_first_note_rule_is_a_step_or_a_tone_of_the_last_chord() -> None:
    assert first_note_rule([67], 2, 67) == frozenset({65, 66, 67, 68, 69})
    chord = first_note_rule([60, 64, 67], 2, 67)
    assert {62, 69, 72, 64} <= chord and 74 not in chord and 71 not in chord


def test_motif_rule_continues_the_calls_interval_pairs_as_played_or_inverted() -> None:
    call = [67, 69, 71, 67]  # intervals +2 +2 -4: pairs (2, 2), (2, -4)
    assert motif_rule(call, [50, 52]) == frozenset({54, 48})  # after +2: +2 or -4
    assert motif_rule(call, [50, 48]) == frozenset({46, 52})  # after -2 (inverted): -2 or +4
    assert motif_rule(call, [50, 51]) == frozenset({53, 49, 55, 47})  # no pair: the call's intervals, either way
    assert motif_rule([60], [50, 52]) is None
    assert [motif_due(i, 0.75) for i in range(4)] == [False, True, True, True]
    assert not any(motif_due(i, 0.0) for i in range(8)) and all(motif_due(i, 1.0) for i in range(8))


def test_quote_rule_bars_the_note_that_would_make_a_literal_quote_too_long() -> None:
    call = [62, 65, 69, 67, 65, 64, 62]
    assert quote_rule(call, [65, 69, 67, 65], 5) == frozenset(range(128)) - {64}  # a fifth note of the call, as played
    assert quote_rule(call, [60, 65, 69, 67], 4) == frozenset(range(128)) - {65}
    assert quote_rule(call, [69, 67, 65], 5) is None  # three notes: shorter echoes stay free
    assert quote_rule(call, [66, 70, 68, 66], 5) is None  # transposed: that is development, not a quote
    assert quote_rule([60, 62, 60, 62, 64], [60, 62], 3) == frozenset(range(128)) - {60, 64}  # every occurrence
    assert quote_rule(call, [65, 69, 67, 65], 0) is None


def test_repeat_rule_bars_the_note_that_would_loop_a_figure_of_the_answer_once_too_often() -> None:
    line = [60, 65, 67, 69, 70, 65, 67, 69, 70, 64, 65, 67, 69]
    assert repeat_rule(line, 4, 2) == frozenset(range(128)) - {70}  # 65 67 69 70 a third time
    assert repeat_rule(line, 4, 3) is None  # three times allowed
    assert repeat_rule(line[:8], 4, 2) is None  # the second time: a riff may return once
    assert repeat_rule([62, 64, 62, 64, 62, 64], 2, 2) == frozenset(range(128)) - {62}  # each figure counted
    assert repeat_rule([67, 69, 71, 72, 67, 69, 71], 4, 1) == frozenset(range(128)) - {72}
    assert repeat_rule(line, 4, 0) is None and repeat_rule(line[:2], 4, 2) is None


def test_accent_rule_keeps_the_models_accent_within_a_share_and_moving_smoothly() -> None:
    assert accent_rule(120, 80, None, 0.2) == pytest.approx(1.2)  # 1.5 x the model's mean: held to +20 %
    assert accent_rule(40, 80, None, 0.2) == pytest.approx(0.8)
    assert accent_rule(88, 80, None, 0.2) == pytest.approx(1.1)  # a small accent passes as the model has it
    assert accent_rule(40, 80, 1.2, 0.2) == pytest.approx(1.1)  # from +20 %: at most half the share per note
    assert accent_rule(120, 80, 0.85, 0.2) == pytest.approx(0.95)
    assert accent_rule(120, 80, 0.9, None) == pytest.approx(1.5)  # no limit: the model's accent whole
    assert accent_rule(120, 80, 1.0, 0.0) == pytest.approx(1.0)  # 0: the call's dynamics exactly
    assert accent_rule(70, 0, None, 0.2) == pytest.approx(1.0)  # no mean yet: no accent


def test_the_plan_does_not_loop_its_own_figure() -> None:
    """A musician heard an answer play its own rising figure three times over at the same pitch: the
    third time the plan bars the note that would complete it, unless the knob is down (repeat)."""
    call = call_of([62, 65, 69, 67, 65, 64, 62])
    plan, free = plan_of(call, motif=0.0, repeat=2), plan_of(call, motif=0.0, repeat=0)
    for pitch in (65, 67, 69, 70, 65, 67, 69, 70, 64, 65, 67, 69):
        plan.played(pitch, 1)
        free.played(pitch, 1)
    pitches = plan.constraints(Constraints(21, 108)).pitches
    assert pitches and 70 not in pitches
    assert 70 in plan.constraints(Constraints(21, 108), temperature=0.3).pitches
    assert 70 in free.constraints(Constraints(21, 108)).pitches


def test_texture_rules_size_the_onsets_and_place_chord_tones_and_bass() -> None:
    chords = call_of([72, 69], chords=[(60, 64, 67), (57, 60, 64)])
    assert [onset_size(chords, i, 1, None) for i in range(3)] == [4, 4, 4]
    assert onset_size(chords, 0, 1, 2) == 2  # at most the polyphony
    assert onset_size(call_of([60, 62, 64]), 5, 1, None) == 1
    assert below_rule([72], 12) == frozenset(range(60, 72))
    assert below_rule([72, 67], 12) == frozenset(range(60, 67))
    assert bass_rule([74], 60) == frozenset(range(0, 60))


def test_pace_rule_keeps_steps_near_the_reference_and_brings_a_drifting_answer_back() -> None:
    first = pace_rule(STEPS, 0.25, 2.0, [])
    assert first and all(0.2 <= STEPS[i] * 1.001 and STEPS[i] <= 0.3125 * 1.001 for i in first) and 0 not in first
    free = pace_rule(STEPS, 0.25, 2.0, [0.25])
    assert {STEPS[i] for i in free} > {STEPS[i] for i in first}
    assert all(0.125 <= STEPS[i] * 1.001 and STEPS[i] <= 0.5 * 1.001 for i in free)
    rushing = pace_rule(STEPS, 0.25, 2.0, [0.13, 0.14, 0.15])
    assert min(STEPS[i] for i in rushing) >= 0.25 * 0.999
    dragging = pace_rule(STEPS, 0.25, 2.0, [0.5, 0.45])
    assert max(STEPS[i] for i in dragging) <= 0.25 * 1.001


def test_length_and_time_scale() -> None:
    assert answer_length(3, 64, 4.0) == 12 and answer_length(28, 16, 4.0) == 16
    assert answer_length(28, 64, 0.5) == 14 and answer_length(1, 16, 0.5) == 1
    assert time_scale(1.0, 0.25, 1.0) == pytest.approx(4.0) and time_scale(None, 0.25, 1.7) == 1.7


def test_narrow_skips_a_rule_that_would_leave_nothing() -> None:
    assert narrow(frozenset(range(60, 72)), [frozenset({61, 62, 90}), None, frozenset({100}), frozenset({62})]) == {62}


# -- the plan ------------------------------------------------------------------------------------


def test_the_plan_steps_its_notes_from_the_call() -> None:
    call = call_of([67, 69, 71, 67, 74, 71, 67] * 2)
    plan = plan_of(call, motif=1.0)
    first = plan.constraints(Constraints(21, 108))
    assert isinstance(first, PlannedConstraints) and 0 not in first.steps
    assert first.pitches is not None and first.pitches <= first_note_rule([67], 2, 67)
    assert all(p % 12 in C_MAJOR for p in first.pitches)  # G major: no F natural ...
    assert 66 not in first.pitches or 66 % 12 in scale_of((7, "major"))
    plan.played(67, 1)
    plan.played(69, 9)  # +2: the call went on +2 or -4
    assert plan.constraints(Constraints(21, 108)).pitches <= {71, 65}


def test_the_plan_does_not_parrot_the_call() -> None:
    """A musician heard answers replay the call note for note at its pitch: after `quote` notes of it in a
    row the plan bars the next one, and the motif rule's other continuations (inverted, transposed) remain."""
    call = call_of([62, 65, 69, 67, 65, 64, 62])
    plan = plan_of(call, motif=1.0, quote=3)
    for pitch in (65, 69, 67):
        plan.played(pitch, 1)
    pitches = plan.constraints(Constraints(21, 108)).pitches
    assert 65 not in pitches and pitches  # 65 69 67 65 would be four notes of the call
    assert 65 in plan.constraints(Constraints(21, 108), temperature=0.3).pitches  # the knob down: repeat
    free = plan_of(call, motif=1.0, quote=0)
    for pitch in (65, 69, 67):
        free.played(pitch, 1)
    assert 65 in free.constraints(Constraints(21, 108)).pitches


def test_the_plan_fills_a_chord_under_its_top_then_moves_on() -> None:
    call = call_of([72, 69, 72, 69], step_s=1.0, chords=[(60, 64, 67)] * 4)
    plan = plan_of(call)
    plan.played(72, 1)
    second = plan.constraints(Constraints(21, 108))
    assert second.steps == frozenset({0}) and max(second.pitches) < 72 and min(second.pitches) >= 60
    for pitch in (67, 64, 60):
        plan.played(pitch, 0)
    assert 0 not in plan.constraints(Constraints(21, 108)).steps  # four notes: the next is a new onset


def test_the_plan_gives_two_hands_a_bass() -> None:
    notes = [CallNote(i * 0.3, p, 0.25) for i, p in enumerate([72, 74, 76, 74] * 2)]
    notes += [CallNote(i * 0.6, p, 0.55) for i, p in enumerate([48, 43, 45, 41])]
    call = describe_call(notes)
    assert call is not None and call.split is not None
    plan = plan_of(call)
    plan.played(74, 1)
    bass = plan.constraints(Constraints(21, 108))
    assert bass.steps == frozenset({0}) and max(bass.pitches) < call.split and min(bass.pitches) >= 35
    # A bass that sat high for most of the call: its window reaches into the melody's; the bass stays under it.
    notes = [CallNote(i * 0.3, p, 0.25) for i, p in enumerate([69, 71, 72, 71] * 2)]
    notes += [CallNote(i * 0.6, p, 0.55) for i, p in enumerate([60, 60, 60, 53])]
    high = describe_call(notes)
    assert high is not None and high.split == 69
    plan = plan_of(high)
    plan.played(70, 1)
    assert max(plan.constraints(Constraints(21, 108)).pitches) < 69


# -- answers on the fake clock, tiny model ---------------------------------------------------------


def answers(tiny_model, notes, seeds=range(3), run_s=20.0, **settings):
    """(call notes, [(onset, pitch) of each answer]) for `notes` played with each random seed."""
    out = []
    for seed in seeds:
        clock = Clock()
        port = Port(clock)
        engine = Engine(tiny_model, port.send, EngineSettings(gap_s=0.3, random_seed=seed, **settings), clock=clock)
        play(engine, clock, notes)
        run_until(engine, clock, clock.now + run_s, step=0.002)
        out.append(port.note_ons())
        assert any(isinstance(e, AnswerPlanned) for e in events(engine)) == (settings.get("plan", 1) is not None)
    return out


def onset_groups(ons):
    groups: list[list[int]] = []
    last = None
    for t, p in ons:
        if last is not None and t - last < 0.001:
            groups[-1].append(p)
        else:
            groups.append([p])
        last = t
    return groups


def iois(ons):
    times = sorted({round(t, 4) for t, _ in ons})
    return [b - a for a, b in zip(times, times[1:])]


SCALE_CALL = [(i * 0.25, 0.2, p, 90) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72, 67, 64])]


def test_answers_keep_the_calls_key_register_and_first_step(tiny_model) -> None:
    for ons in answers(tiny_model, SCALE_CALL):
        pitches = [p for _, p in ons]
        assert len(pitches) == 16
        assert all(p % 12 in C_MAJOR for p in pitches)  # the key rule
        assert abs(statistics.median(pitches) - 66) <= 5  # the register rule
        assert max(pitches) - min(pitches) <= 12 + 12
        assert min(abs(pitches[0] - 64), abs(pitches[0] % 12 - 4)) <= 2  # the first note rule


def test_answers_keep_the_calls_pace_slow_chords_and_fast_lines(tiny_model) -> None:
    chords = [(i * 4.0, 3.8, p, 80) for i, chord in enumerate([(60, 64, 67), (57, 60, 64)]) for p in chord]
    for ons in answers(tiny_model, chords, seeds=range(2), run_s=40.0):
        ratio = statistics.median(iois(ons)) / 4.0
        assert 0.5 <= ratio <= 2.0  # the pace rule and the time scale: whole notes at 60 BPM
        assert [len(g) for g in onset_groups(ons)] == [3] * 5  # the texture rule, in whole chords
    fast = [(i * 0.1, 0.08, p, 80) for i, p in enumerate([64, 66, 67, 69, 71, 72, 71, 69, 67, 66, 64, 62])]
    for ons in answers(tiny_model, fast, seeds=range(2)):
        assert 0.5 <= statistics.median(iois(ons)) / 0.1 <= 2.0
        assert max(len(g) for g in onset_groups(ons)) == 1  # a line for a line


def test_a_short_call_gets_a_short_answer(tiny_model) -> None:
    ons, = answers(tiny_model, SCALE_CALL[:3], seeds=[1], reply_notes=24, run_s=60.0)
    assert len(ons) == 12  # the length rule: four times the call
    ons, = answers(tiny_model, SCALE_CALL[:3], seeds=[1], reply_notes=24, run_s=60.0, plan=None)
    assert len(ons) == 24


def test_answers_to_a_repeated_motif_develop_it(tiny_model) -> None:
    motif = [67, 69, 71, 67, 74, 71, 67]
    call = [(bar * 1.8 + i * 0.25, 0.2, p, 90) for bar in range(3) for i, p in enumerate(motif)]
    steps = [b - a for a, b in zip(motif, motif[1:])]
    pairs = set(zip(steps, steps[1:])) | {(-a, -b) for a, b in zip(steps, steps[1:])}
    echoed = []
    for ons in answers(tiny_model, call):
        top = [max(g) for g in onset_groups(ons)]
        got = [b - a for a, b in zip(top, top[1:])]
        echoed.append(sum(pair in pairs for pair in zip(got, got[1:])) / (len(got) - 1))
    assert statistics.median(echoed) >= 0.3  # the motif rule: the tiny model alone hardly ever repeats a pair


def test_two_hands_are_answered_with_a_bass_and_a_melody(tiny_model) -> None:
    call = [(i * 0.3, 0.25, p, 90) for i, p in enumerate([72, 74, 76, 74, 72, 76, 77, 76])]
    call += [(i * 0.6, 0.55, p, 80) for i, p in enumerate([48, 43, 45, 41])]
    for ons in answers(tiny_model, sorted(call)):
        groups = onset_groups(ons)
        assert any(len(g) == 2 for g in groups)
        assert all(min(g) < 72 and max(g) >= 62 for g in groups if len(g) == 2)  # the bass under the melody


def test_the_plans_margins_come_from_the_flags_over_the_config_file() -> None:
    from improv.cli import build_parser
    from improv.config import ConfigError, parse_config
    from improv.live.session import plan_settings_from

    config = parse_config("[engine]\nplan_accent = 0.3\nplan_repeat = 3\n")
    parse = build_parser().parse_args
    assert plan_settings_from(parse([]), config) == PlanSettings(accent=0.3, repeat=3)
    assert plan_settings_from(parse(["--plan-accent", "0.5"]), config).accent == 0.5
    assert plan_settings_from(parse(["--no-plan"]), config) is None
    with pytest.raises(ValueError, match="plan-accent must be a number 0-1, got 1.5"):
        plan_settings_from(parse(["--plan-accent", "1.5"]), config)
    with pytest.raises(ConfigError, match="plan_accent must be a number 0-1, got 'loud'"):
        parse_config("[engine]\nplan_accent = 'loud'\n")
