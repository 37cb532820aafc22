"""The output owns its keys: one sounding note per (channel, pitch), offs before ons, an exact panic. Fake clock."""

from __future__ import annotations

import random
from collections import Counter

from improv.live.output import Output
from improv.midi.status import ALL_NOTES_OFF, CONTROL_CHANGE, NOTE_OFF, NOTE_ON


def make(**kwargs) -> tuple[Output, list[tuple[int, ...]]]:
    sent: list[tuple[int, ...]] = []
    return Output(lambda d: sent.append(tuple(d)), **kwargs), sent


def restrikes(sent: list[tuple[int, ...]]) -> list[tuple[int, int]]:
    """(channel, pitch) of every note-on sent while that key was already sounding."""
    sounding: set[tuple[int, int]] = set()
    found = []
    for data in sent:
        key = (data[0] & 0x0F, data[1]) if len(data) == 3 else None
        if data[0] & 0xF0 == NOTE_ON and data[2] > 0:
            if key in sounding:
                found.append(key)
            sounding.add(key)
        elif data[0] & 0xF0 == NOTE_OFF:
            sounding.discard(key)
    return found


def test_a_re_strike_sends_the_note_off_first() -> None:
    output, sent = make()
    output.note(0.0, 1.0, 60, 100)
    output.note(0.5, 1.0, 60, 90)
    output.run_due(0.0)
    output.run_due(0.5)
    assert sent == [(NOTE_ON, 60, 100), (NOTE_OFF, 60, 0), (NOTE_ON, 60, 90)]


def test_a_re_strike_drops_the_earlier_notes_pending_off() -> None:
    output, sent = make()
    output.note(0.0, 1.0, 60, 100)
    output.note(0.5, 1.0, 60, 90)
    output.run_due(0.5)
    assert output.next_due() == 1.5  # not 1.0: the first note's off is gone, not merely skipped later
    assert output.run_due(1.0) == 0 and sent[-1] == (NOTE_ON, 60, 90)  # and it cannot cut the second note
    output.run_due(1.5)
    assert sent[-1] == (NOTE_OFF, 60, 0) and output.sounding() == 0


def test_whatever_strikes_a_key_it_sounds_once() -> None:
    """An answer's note, the thru path and the computer keyboard share the keys of one output."""
    output, sent = make()
    output.note(0.0, 1.0, 60, 100, channel=0, tag="reply")
    output.run_due(0.0)
    output.note_on_now(0.2, 60, 70, 0, "thru")  # the player strikes the key the answer holds
    output.note_on_now(0.3, 60, 80, 0, "keys")  # and the computer keyboard too
    output.note_off_now(60, 0, "thru")  # the thru's release does not end the keyboard's note
    assert restrikes(sent) == [] and output.sounding() == 1
    output.run_due(1.0)  # nor does the answer's own off, long taken over
    assert output.sounding("keys") == 1
    output.note_off_now(60, 0, "keys")
    assert output.sounding() == 0
    assert Counter(d[0] & 0xF0 for d in sent) == Counter({NOTE_ON: 3, NOTE_OFF: 3})


def test_at_one_time_note_offs_go_before_note_ons() -> None:
    output, sent = make()
    output.note(1.0, 0.5, 62, 90)  # scheduled first, struck at 1.0
    output.note(0.0, 1.0, 60, 100)  # ends at 1.0
    output.run_due(0.0)
    output.run_due(1.0)
    assert sent[1:] == [(NOTE_OFF, 60, 0), (NOTE_ON, 62, 90)]


def test_a_zero_length_note_is_struck_then_released() -> None:
    output, sent = make()
    output.note(1.0, 0.0, 60, 100)
    output.run_due(1.0)
    assert sent == [(NOTE_ON, 60, 100), (NOTE_OFF, 60, 0)] and output.sounding() == 0


def test_panic_releases_exactly_what_is_sounding() -> None:
    output, sent = make()
    output.note(0.0, 5.0, 60, 100, channel=0)
    output.note(0.0, 0.1, 61, 100, channel=0)  # over before the panic
    output.note(0.0, 5.0, 64, 100, channel=3)
    output.note(9.0, 1.0, 67, 100, channel=5)  # not struck yet
    output.note_on_now(0.5, 72, 90, 1, "thru")
    output.run_due(1.0)
    before = len(sent)
    output.panic()
    offs = [d for d in sent[before:] if d[0] & 0xF0 == NOTE_OFF]
    assert sorted(offs) == [(NOTE_OFF, 60, 0), (NOTE_OFF | 1, 72, 0), (NOTE_OFF | 3, 64, 0)]
    assert sent[before + 3:] == [(CONTROL_CHANGE | c, ALL_NOTES_OFF, 0) for c in (0, 1, 3)]
    output.run_due(20.0)
    assert len(sent) == before + 6 and output.sounding() == 0  # the pending note never sounds


def test_what_went_out_is_collected_not_called_back() -> None:
    output, _ = make()
    output.note(0.0, 1.0, 60, 100, tag="reply")
    output.note_on_now(0.0, 62, 80, 0, "keys")
    output.run_due(0.002)
    sent = output.take_sent()
    assert [(s.tag, s.pitch, s.scheduled, s.sent) for s in sent] == [("keys", 62, 0.0, 0.0), ("reply", 60, 0.0, 0.002)]
    assert output.take_sent() == []


def test_random_traffic_never_strikes_a_sounding_key_and_panic_leaves_nothing() -> None:
    rng = random.Random(3)
    output, sent = make()
    now = 0.0
    for _ in range(2000):
        now += rng.choice((0.0, 0.0, 0.01, 0.05))
        pitch, channel = rng.randrange(60, 66), rng.randrange(2)
        action = rng.random()
        if action < 0.5:
            output.note(now + rng.choice((0.0, 0.02, 0.1)), rng.choice((0.0, 0.05, 0.3)), pitch, 90, channel,
                        rng.choice(("reply", "duet")))
        elif action < 0.7:
            output.note_on_now(now, pitch, 80, channel, "thru")
        elif action < 0.9:
            output.note_off_now(pitch, channel, "thru")
        elif action < 0.95:
            output.cancel("reply")
        output.run_due(now)
    assert restrikes(sent) == []
    output.panic()
    balance: Counter = Counter()
    for d in sent:
        if d[0] & 0xF0 == NOTE_ON:
            balance[(d[0] & 0x0F, d[1])] += 1
        elif d[0] & 0xF0 == NOTE_OFF:
            balance[(d[0] & 0x0F, d[1])] -= 1
    assert +balance == Counter() and -balance == Counter()  # every note-on has exactly one note-off


def test_watchdog_ends_notes_held_too_long() -> None:
    output, sent = make(max_hold_s=2.0)
    output.note(0.0, 100.0, 64, 100)
    output.run_due(0.0)
    output.run_due(2.5)
    assert sent == [(NOTE_ON, 64, 100), (NOTE_OFF, 64, 0)]


def test_send_errors_do_not_stop_the_output() -> None:
    def broken(data) -> None:
        raise OSError("port gone")

    output = Output(broken)
    output.note(0.0, 0.1, 60, 100)
    output.run_due(1.0)
    assert output.send_errors == 2 and output.sounding() == 0
