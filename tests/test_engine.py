"""The engine on a fake clock: answers, interruptions, panic, echoes, tempo and dynamics."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from improv.live.engine import Engine, EngineSettings, Message, ReplyDone, StateChanged, snap_to_pulse
from improv.live.protocol import PlayKey
from test_output import restrikes


class Port:
    """Records what the engine sends, with the fake time it was sent."""

    def __init__(self, clock: "Clock") -> None:
        self.clock = clock
        self.sent: list[tuple[float, tuple[int, ...]]] = []

    def send(self, data) -> None:
        self.sent.append((self.clock.now, tuple(data)))

    def note_ons(self) -> list[tuple[float, int]]:
        return [(t, d[1]) for t, d in self.sent if d[0] & 0xF0 == 0x90 and d[2] > 0]

    def balance(self) -> Counter:
        """note-ons minus note-offs per pitch: all zero when nothing is left sounding."""
        count: Counter = Counter()
        for _, d in self.sent:
            if d[0] & 0xF0 == 0x90 and d[2] > 0:
                count[d[1]] += 1
            elif d[0] & 0xF0 == 0x80 or (d[0] & 0xF0 == 0x90 and d[2] == 0):
                count[d[1]] -= 1
        return +count


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(tiny_model, **settings) -> tuple[Engine, Port, Clock]:
    clock = Clock()
    port = Port(clock)
    engine = Engine(tiny_model, port.send, EngineSettings(random_seed=7, **settings), clock=clock)
    return engine, port, clock


def play(engine: Engine, clock: Clock, notes: list[tuple[float, float, int, int]]) -> None:
    """Play (start offset, duration, pitch, velocity) notes, running the engine every millisecond."""
    start = clock.now
    messages = []
    for offset, duration, pitch, velocity in notes:
        messages.append((start + offset, (0x90, pitch, velocity)))
        messages.append((start + offset + duration, (0x80, pitch, 0)))
    messages.sort()
    for t, data in messages:
        run_until(engine, clock, t)
        engine.push(list(data), t)
    run_until(engine, clock, messages[-1][0])


def run_until(engine: Engine, clock: Clock, t: float, step: float = 0.001) -> None:
    while clock.now < t:
        clock.now = min(clock.now + step, t)
        engine.process(clock.now)


def events(engine: Engine) -> list:
    out = []
    while not engine.events.empty():
        out.append(engine.events.get())
    return out


PHRASE = [(i * 0.25, 0.2, p, 90) for i, p in enumerate([60, 62, 64, 65, 67, 65, 64, 62])]


def test_a_phrase_then_the_gap_gets_an_answer(tiny_model) -> None:
    engine, port, clock = make(tiny_model, gap_s=0.4, reply_notes=12)
    play(engine, clock, PHRASE)
    last_off = clock.now
    run_until(engine, clock, last_off + 0.39)
    assert port.note_ons() == []  # nothing before the gap
    run_until(engine, clock, last_off + 15)
    ons = port.note_ons()
    assert len(ons) == 12
    assert ons[0][0] == pytest.approx(last_off + 0.4, abs=0.0015)
    assert all(21 <= p <= 108 for _, p in ons)
    assert port.balance() == Counter()
    done = [e for e in events(engine) if isinstance(e, ReplyDone)]
    assert len(done) == 1 and done[0].notes == 12 and not done[0].interrupted


def test_playing_during_the_reply_stops_it_and_releases_its_notes(tiny_model) -> None:
    engine, port, clock = make(tiny_model, gap_s=0.3, reply_notes=64, max_polyphony=1)
    play(engine, clock, PHRASE)
    run_until(engine, clock, clock.now + 0.3 + 0.5)
    assert port.note_ons(), "the reply should have started"
    interrupt_at = clock.now
    engine.push([0x90, 72, 100], interrupt_at)
    run_until(engine, clock, interrupt_at + 0.002)
    assert port.balance() == Counter()  # every reply note released at once
    sent_before = len(port.note_ons())
    run_until(engine, clock, interrupt_at + 3.0)
    assert len(port.note_ons()) == sent_before  # and no more reply notes while the key is down
    assert any(isinstance(e, ReplyDone) and e.interrupted for e in events(engine))


def test_the_opening_is_sampled_before_the_gap_ends_and_sounds_the_moment_it_does(tiny_model) -> None:
    engine, port, clock = make(tiny_model, gap_s=0.3, reply_notes=8, presample_s=0.03)
    play(engine, clock, PHRASE)
    gap_end = clock.now + 0.3
    run_until(engine, clock, gap_end - 0.01)
    assert engine.output.pending("reply") >= 1 and port.note_ons() == []  # ready, and silent
    clock.now = gap_end
    engine.process(gap_end)
    assert port.note_ons()[0][0] == gap_end  # on the fake clock: exactly when the gap ends


def test_an_early_answer_that_has_sounded_stands(tiny_model) -> None:
    engine, port, clock = make(tiny_model, gap_s=0.3, reply_notes=8, presample_s=0.03)
    play(engine, clock, PHRASE)
    gap_end = clock.now + 0.3
    run_until(engine, clock, gap_end - 0.01)
    clock.now = gap_end  # the pass began just before the gap's end; its last send is just after
    engine.process(gap_end - 0.0005)
    assert len(port.note_ons()) == 1
    events(engine)
    engine.push([0x90, 50, 70], gap_end + 0.001)  # the player plays on
    run_until(engine, clock, gap_end + 0.002)
    done = [e for e in events(engine) if isinstance(e, ReplyDone)]
    assert len(done) == 1 and done[0].interrupted and done[0].notes >= 1  # an answer, cut short: not taken back
    assert port.balance() == Counter()


def test_a_command_in_the_early_window_applies_to_the_whole_answer(tiny_model) -> None:
    """A key locked 10 ms before the gap ends: the opening sampled before it is sampled again."""
    engine, port, clock = make(tiny_model, gap_s=0.3, reply_notes=12, presample_s=0.03)
    play(engine, clock, PHRASE)
    gap_end = clock.now + 0.3
    run_until(engine, clock, gap_end - 0.01)
    assert engine.output.pending("reply") >= 1
    engine.command("key_lock", (1, "major"))
    run_until(engine, clock, gap_end + 10.0)
    db_major = {1, 3, 5, 6, 8, 10, 0}
    assert len(port.note_ons()) == 12 and all(p % 12 in db_major for _, p in port.note_ons())


def test_re_roll_in_the_early_window_or_after_playing_on_says_why_not(tiny_model) -> None:
    engine, port, clock = make(tiny_model, gap_s=0.3, reply_notes=4, presample_s=0.03)
    play(engine, clock, PHRASE)
    gap_end = clock.now + 0.3
    run_until(engine, clock, gap_end - 0.01)
    engine.command("reroll")  # the first answer has not begun: there is nothing to re-roll
    run_until(engine, clock, clock.now + 0.002)
    assert [e.text for e in events(engine) if isinstance(e, Message)] == [
        "nothing to re-roll yet: play a phrase and let improv answer"]
    run_until(engine, clock, gap_end + 5.0)
    play(engine, clock, PHRASE[:3])
    engine.command("reroll")  # the player has played since the last answer
    run_until(engine, clock, clock.now + 0.002)
    assert any("you have played since the last answer" in e.text for e in events(engine) if isinstance(e, Message))
    run_until(engine, clock, clock.now + 5.0)
    done = [e for e in events(engine) if isinstance(e, ReplyDone)]
    assert len(done) == 1 and not done[0].rerolled  # the new phrase was answered, not an old one re-rolled


def test_a_duet_answer_can_be_re_rolled(tiny_model) -> None:
    engine, port, clock = make(tiny_model, mode="duet", gap_s=0.3, reply_notes=4)
    play(engine, clock, PHRASE)
    run_until(engine, clock, clock.now + 8.0)
    assert [e for e in events(engine) if isinstance(e, ReplyDone)]
    engine.command("reroll")
    run_until(engine, clock, clock.now + 8.0)
    done = [e for e in events(engine) if isinstance(e, ReplyDone)]
    assert len(done) == 1 and done[0].rerolled and done[0].notes >= 1


def _session(tiny_model, presample_s: float, interruption: list[tuple[float, tuple[int, ...]]]):
    """PHRASE, then messages at offsets from the gap's end, then silence: what was sent, and the answers."""
    engine, port, clock = make(tiny_model, gap_s=0.3, reply_notes=6, presample_s=presample_s)
    play(engine, clock, PHRASE)
    gap_end = clock.now + 0.3
    for offset, data in interruption:
        run_until(engine, clock, gap_end + offset)
        engine.push(list(data), clock.now)
    run_until(engine, clock, clock.now + 8.0)
    sent = [d for _, d in port.sent]
    return sent, [e for e in events(engine) if isinstance(e, ReplyDone)], engine


@pytest.mark.parametrize("interruption", [
    [(-0.01, (0x90, 72, 100)), (0.2, (0x80, 72, 0))],  # a key in the last 10 ms of the gap
    [(-0.01, (0xB0, 64, 127)), (0.2, (0xB0, 64, 0))],  # the sustain pedal, likewise
])
def test_playing_on_in_the_last_moments_of_the_gap_takes_the_early_answer_back(tiny_model, interruption) -> None:
    early, early_done, engine = _session(tiny_model, 0.03, interruption)
    late, late_done, _ = _session(tiny_model, 0.0, interruption)
    # The answer begun early never sounded, and it left no trace: the same notes as when
    # nothing was begun early (the model's state and the random draws were taken back).
    assert early == late and len(early_done) == len(late_done) == 1
    assert [e.pitches for e in early_done] == [e.pitches for e in late_done]
    assert not early_done[0].interrupted and engine.output.sounding() == 0


def test_duet_plays_along_while_the_player_plays_then_winds_down(tiny_model) -> None:
    engine, port, clock = make(tiny_model, mode="duet", gap_s=0.3, reply_notes=6)
    long_phrase = [(i * 0.25, 0.2, 60 + (i * 5) % 12, 90) for i in range(16)]
    start = clock.now
    play(engine, clock, long_phrase)
    last_off = clock.now
    during = [(t, p) for t, p in port.note_ons() if t < last_off]
    assert during, "duet answers while the player plays"
    assert min(t for t, _ in during) < start + 2.0  # from early on, not only at the end
    run_until(engine, clock, last_off + 10.0)
    after = [(t, p) for t, p in port.note_ons() if t >= last_off]
    assert after and len(after) <= 6 + 1  # after the gap it finishes with a normal answer's length (plus one ahead)
    assert port.balance() == Counter() and engine.output.sounding() == 0
    assert engine.answer.reply is None  # and then it is quiet until the player plays again


def test_panic_command_silences_everything_and_sends_cc123(tiny_model) -> None:
    engine, port, clock = make(tiny_model, gap_s=0.3, reply_notes=64)
    play(engine, clock, PHRASE)
    run_until(engine, clock, clock.now + 0.8)
    engine.command("panic")
    run_until(engine, clock, clock.now + 0.002)
    assert port.balance() == Counter()
    assert (0xB0, 123, 0) in [d for _, d in port.sent]


def test_stop_releases_notes_that_are_sounding(tiny_model) -> None:
    engine, port, clock = make(tiny_model, gap_s=0.3, reply_notes=64, thru=True)
    engine.push([0x90, 60, 100], clock.now)
    run_until(engine, clock, clock.now + 0.01)
    assert port.balance() == Counter({60: 1})  # thru: the player's key is held
    engine.stop()
    assert port.balance() == Counter()


def test_temperature_command_and_invalid_values(tiny_model) -> None:
    engine, _, clock = make(tiny_model)
    engine.command("temperature", 2.5)
    engine.process(clock.now)
    assert engine.temperature == 2.5
    engine.command("temperature_step", -0.05)
    engine.process(clock.now)
    assert engine.temperature == pytest.approx(2.45)


def test_echo_of_our_own_output_is_not_taken_as_the_player(tiny_model) -> None:
    engine, port, clock = make(tiny_model, gap_s=0.3, reply_notes=4)
    play(engine, clock, PHRASE)
    run_until(engine, clock, clock.now + 0.31)
    ons = [(t, d) for t, d in port.sent if d[0] & 0xF0 == 0x90 and d[2] > 0]
    assert ons
    t, data = ons[0]
    engine.push(list(data), t + 0.005)  # the loop brings it back 5 ms later
    run_until(engine, clock, clock.now + 0.01)
    assert engine.ignored_echoes == 1
    assert engine.tracker.keys_down == 0


def test_the_player_striking_the_key_improv_just_played_is_not_an_echo(tiny_model) -> None:
    engine, port, clock = make(tiny_model, gap_s=0.3, reply_notes=8)
    play(engine, clock, PHRASE)
    run_until(engine, clock, clock.now + 0.31)
    t, data = next((t, d) for t, d in port.sent if d[0] & 0xF0 == 0x90 and d[2] > 0)
    events(engine)
    engine.push([0x90, data[1], 1 + data[2] % 127], t + 0.005)  # same key, 5 ms later, the player's own velocity
    run_until(engine, clock, clock.now + 0.01)
    assert engine.ignored_echoes == 0
    assert engine.tracker.keys_down == 1
    assert any(isinstance(e, ReplyDone) and e.interrupted for e in events(engine))


def test_a_computer_piano_key_sounds_is_the_players_and_its_echo_is_ignored(tiny_model) -> None:
    engine, port, clock = make(tiny_model, gap_s=0.3)
    engine.key(61, 100)
    engine.process(clock.now)
    assert port.sent == [(clock.now, (0x90, 61, 100))]
    assert engine.tracker.keys_down == 1
    engine.push([0x90, 61, 100], clock.now + 0.004)  # routed back to the input
    run_until(engine, clock, clock.now + 0.005)
    assert engine.ignored_echoes == 1 and engine.tracker.keys_down == 1
    engine.key(61, 0)
    run_until(engine, clock, clock.now + 0.001)
    assert port.sent[-1][1] == (0x80, 61, 0) and engine.tracker.keys_down == 0
    assert not any(isinstance(e, StateChanged) for e in events(engine))  # a key is a note, not a change of state
    with pytest.raises(ValueError):
        PlayKey(128, 100)
    engine.key(128, 100)  # from a front end: said, not raised
    assert [e.text for e in events(engine)] == ["key: no such key: pitch 128, velocity 100"]


def test_malformed_messages_are_ignored(tiny_model) -> None:
    engine, port, clock = make(tiny_model, gap_s=0.3)
    for data in ([], [0xF0, 1, 2], [0x90], [0x90, 200, 300], [0xFF] * 10, [0x80, 60], [0xE0, 0, 64]):
        engine.push(data, clock.now)
    run_until(engine, clock, clock.now + 1.0)
    assert port.sent == []
    assert engine.failed is None


@pytest.mark.parametrize(
    "step,pulse,expected",
    [
        (0.0, 0.5, 0.0),  # chord tone
        (0.05, 0.5, 0.05),  # ornament: under a sixth of the pulse
        (2.5, 0.5, 2.5),  # a rest longer than 4 pulses
        (0.4, 0.5, 0.5),  # 0.8 pulse -> 1
        (0.24, 0.5, 0.25),  # about half
        (0.17, 0.5, 0.5 / 3),  # a triplet
        (0.8, 0.5, 0.75),  # 1.6 pulses -> 3/2
        (0.3, None, 0.3),  # no pulse yet
    ],
)
def test_snap_to_pulse(step: float, pulse: float | None, expected: float) -> None:
    assert snap_to_pulse(step, pulse) == pytest.approx(expected)


def test_duet_with_thru_never_strikes_a_sounding_key(tiny_model) -> None:
    """The player's notes (thru, re-struck keys among them), the computer keyboard and a duet's answers
    share one output: no note-on for a key already sounding, nothing left sounding after stop."""
    engine, port, clock = make(tiny_model, mode="duet", thru=True, gap_s=0.3, reply_notes=8, max_polyphony=3)
    rng = random.Random(5)
    notes, t = [], 0.0
    for _ in range(80):
        notes.append((t, rng.choice((0.05, 0.2, 0.6)), rng.randrange(58, 66), rng.randrange(40, 110)))
        t += rng.choice((0.0, 0.1, 0.25))
    play(engine, clock, notes)
    for pitch in (60, 62, 60):
        engine.key(pitch, 90)
        run_until(engine, clock, clock.now + 0.1)
        engine.key(pitch, 0)
    run_until(engine, clock, clock.now + 3.0)
    engine.stop()
    sent = [d for _, d in port.sent]
    assert sum(1 for d in sent if d[0] & 0xF0 == 0x90 and d[2] > 0) > len(notes)  # the answers played too
    assert restrikes(sent) == [] and port.balance() == Counter()
