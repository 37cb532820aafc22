"""Live note tracking: pairing, pedal, all-notes-off, and raw bytes that never raise."""

from __future__ import annotations

import random

import mido
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from improv.music.events import Note
from improv.live.listener import NoteStarted, NoteTracker


def on(pitch: int, velocity: int = 100, channel: int = 0) -> list[int]:
    return [0x90 | channel, pitch, velocity]


def off(pitch: int, channel: int = 0) -> list[int]:
    return [0x80 | channel, pitch, 64]


def cc(control: int, value: int, channel: int = 0) -> list[int]:
    return [0xB0 | channel, control, value]


def pedal(down: bool, channel: int = 0) -> list[int]:
    return cc(64, 127 if down else 0, channel)


def play(tracker: NoteTracker, timed: list[tuple[float, list[int]]]) -> list[Note | NoteStarted]:
    outputs: list[Note | NoteStarted] = []
    for time, data in timed:
        outputs.extend(tracker.feed_bytes(data, time))
    return outputs


def ended(outputs: list[Note | NoteStarted]) -> list[Note]:
    return [o for o in outputs if isinstance(o, Note)]


# Each case: the timed input, and the notes that must end during it, in order.
PAIRING_CASES = {
    "note-on then note-off": (
        [(0.0, on(60)), (1.0, off(60))],
        [Note(60, 100, 0.0, 1.0)],
    ),
    "velocity-0 note-on is a note-off": (
        [(0.0, on(60)), (0.5, on(60, velocity=0))],
        [Note(60, 100, 0.0, 0.5)],
    ),
    "pedal holds a released note until pedal-up": (
        [(0.0, pedal(True)), (1.0, on(60)), (2.0, off(60)), (3.0, pedal(False))],
        [Note(60, 100, 1.0, 2.0)],
    ),
    "key held through pedal-up ends at its note-off": (
        [(0.0, pedal(True)), (1.0, on(60)), (2.0, pedal(False)), (3.0, off(60))],
        [Note(60, 100, 1.0, 2.0)],
    ),
    "pedal-up ends only the released notes": (
        [(0.0, pedal(True)), (1.0, on(60)), (1.0, on(64)), (2.0, off(64)), (3.0, pedal(False)), (4.0, off(60))],
        [Note(64, 100, 1.0, 2.0), Note(60, 100, 1.0, 3.0)],
    ),
    "pedal-up ends released notes in onset order": (
        [(0.0, pedal(True)), (1.0, on(60)), (2.0, on(72)), (3.0, off(72)), (3.0, off(60)), (4.0, pedal(False))],
        [Note(60, 100, 1.0, 3.0), Note(72, 100, 2.0, 2.0)],
    ),
    "re-strike under the pedal ends the sustained note": (
        [(0.0, pedal(True)), (1.0, on(60)), (2.0, off(60)), (3.0, on(60, 80)), (4.0, off(60)), (5.0, pedal(False))],
        [Note(60, 100, 1.0, 2.0), Note(60, 80, 3.0, 2.0)],
    ),
    "pressing the pedal after the release does not revive a note": (
        [(0.0, on(60)), (1.0, off(60)), (2.0, pedal(True)), (3.0, pedal(False))],
        [Note(60, 100, 0.0, 1.0)],
    ),
    "CC64 value 63 is up, 64 is down": (
        [(0.0, cc(64, 63)), (1.0, on(60)), (2.0, off(60)), (3.0, cc(64, 64)), (4.0, on(62)), (5.0, off(62)),
         (6.0, cc(64, 63))],
        [Note(60, 100, 1.0, 1.0), Note(62, 100, 4.0, 2.0)],
    ),
    "pedal moving while down changes nothing": (
        [(0.0, cc(64, 100)), (1.0, on(60)), (2.0, off(60)), (3.0, cc(64, 70)), (4.0, cc(64, 127)), (5.0, cc(64, 10))],
        [Note(60, 100, 1.0, 4.0)],
    ),
    "second note-on of a held pitch ends the first": (
        [(0.0, on(60)), (1.0, on(60, 90)), (2.0, off(60))],
        [Note(60, 100, 0.0, 1.0), Note(60, 90, 1.0, 1.0)],
    ),
    "note-off with no note-on is ignored": (
        [(0.0, off(60)), (1.0, on(60)), (2.0, off(60)), (3.0, off(60))],
        [Note(60, 100, 1.0, 1.0)],
    ),
    "repeated note-off under the pedal is ignored": (
        [(0.0, pedal(True)), (1.0, on(60)), (2.0, off(60)), (2.5, off(60)), (3.0, pedal(False))],
        [Note(60, 100, 1.0, 2.0)],
    ),
    "CC123 ends held and sustained notes on its channel": (
        [(0.0, pedal(True)), (1.0, on(60)), (1.0, on(64)), (2.0, off(64)), (3.0, cc(123, 0)), (4.0, off(60)),
         (5.0, pedal(False))],
        [Note(60, 100, 1.0, 2.0), Note(64, 100, 1.0, 2.0)],
    ),
    "CC120 ends every note on its channel": (
        [(0.0, on(60)), (1.0, on(67)), (2.0, cc(120, 0)), (3.0, off(60)), (3.0, off(67))],
        [Note(60, 100, 0.0, 2.0), Note(67, 100, 1.0, 1.0)],
    ),
    "CC123 leaves other channels sounding": (
        [(0.0, on(60, channel=1)), (1.0, on(62, channel=2)), (2.0, cc(123, 0, channel=1)), (3.0, off(62, channel=2))],
        [Note(60, 100, 0.0, 2.0, channel=1), Note(62, 100, 1.0, 2.0, channel=2)],
    ),
    "mode messages (CC124-127) imply all notes off": (
        [(0.0, on(60)), (1.0, cc(127, 0))],
        [Note(60, 100, 0.0, 1.0)],
    ),
    "CC121 reset-all-controllers lifts the pedal": (
        [(0.0, pedal(True)), (1.0, on(60)), (2.0, off(60)), (3.0, cc(121, 0))],
        [Note(60, 100, 1.0, 2.0)],
    ),
    "the pedal is per channel": (
        [(0.0, pedal(True, channel=1)), (1.0, on(60, channel=0)), (1.0, on(60, channel=1)), (2.0, off(60, channel=0)),
         (2.0, off(60, channel=1)), (3.0, pedal(False, channel=1))],
        [Note(60, 100, 1.0, 1.0, channel=0), Note(60, 100, 1.0, 2.0, channel=1)],
    ),
    "same pitch on two channels is two notes": (
        [(0.0, on(60, channel=0)), (1.0, on(60, channel=3)), (2.0, off(60, channel=3)), (3.0, off(60, channel=0))],
        [Note(60, 100, 1.0, 1.0, channel=3), Note(60, 100, 0.0, 3.0, channel=0)],
    ),
    "time going backwards gives a zero duration": (
        [(5.0, on(60)), (4.0, off(60))],
        [Note(60, 100, 5.0, 0.0)],
    ),
    "times land on the microsecond grid": (
        [(0.1, on(60)), (0.3, off(60))],
        [Note(60, 100, 0.1, 0.2)],
    ),
    "a negative start time is clamped to 0": (
        [(-1.0, on(60)), (0.5, off(60))],
        [Note(60, 100, 0.0, 0.5)],
    ),
}


@pytest.mark.parametrize("timed, expected", PAIRING_CASES.values(), ids=PAIRING_CASES.keys())
def test_notes_end_when_they_stop_sounding(timed: list[tuple[float, list[int]]], expected: list[Note]) -> None:
    tracker = NoteTracker()
    outputs = play(tracker, timed)
    assert ended(outputs) == expected
    assert tracker.sounding == 0
    assert tracker.keys_down == 0


@pytest.mark.parametrize("timed, expected", PAIRING_CASES.values(), ids=PAIRING_CASES.keys())
def test_every_note_is_announced_first(timed: list[tuple[float, list[int]]], expected: list[Note]) -> None:
    outputs = play(NoteTracker(), timed)
    assert sum(isinstance(o, NoteStarted) for o in outputs) == len(expected)
    for note in expected:
        announce = NoteStarted(note.pitch, note.velocity, note.start, note.channel)
        assert outputs.index(announce) < outputs.index(note)


def test_note_on_is_reported_at_once() -> None:
    tracker = NoteTracker()
    assert tracker.feed_bytes(on(60, 77, channel=2), 1.5) == (NoteStarted(60, 77, 1.5, 2),)
    assert tracker.feed_bytes(off(60, channel=2), 2.0) == (Note(60, 77, 1.5, 0.5, 2),)


def test_retrigger_reports_the_ending_before_the_new_onset() -> None:
    tracker = NoteTracker()
    tracker.feed_bytes(on(60), 0.0)
    assert tracker.feed_bytes(on(60, 90), 1.0) == (Note(60, 100, 0.0, 1.0), NoteStarted(60, 90, 1.0))
    assert (tracker.keys_down, tracker.sounding) == (1, 1)


# Each step: input, then (keys_down, sounding, pedal_down(0)) after it.
COUNT_STEPS = [
    (pedal(True), (0, 0, True)),
    (on(60), (1, 1, True)),
    (on(64), (2, 2, True)),
    (off(60), (1, 2, True)),
    (off(60), (1, 2, True)),  # repeated note-off
    (on(60), (2, 2, True)),  # re-strike of the sustained pitch
    (off(60), (1, 2, True)),
    (pedal(False), (1, 1, False)),
    (off(64), (0, 0, False)),
    (off(64), (0, 0, False)),  # orphan
]


def test_keys_down_and_sounding_follow_the_player() -> None:
    tracker = NoteTracker()
    for step, (data, expected) in enumerate(COUNT_STEPS):
        tracker.feed_bytes(data, float(step))
        assert (tracker.keys_down, tracker.sounding, tracker.pedal_down(0)) == expected, f"after step {step}: {data}"


def test_pedal_down_is_per_channel_and_checks_the_channel() -> None:
    tracker = NoteTracker()
    tracker.feed_bytes(pedal(True, channel=5), 0.0)
    assert [tracker.pedal_down(c) for c in range(16)] == [c == 5 for c in range(16)]
    with pytest.raises(ValueError, match="channel must be 0-15, got 16"):
        tracker.pedal_down(16)
    with pytest.raises(ValueError, match="channel must be 0-15, got -1"):
        tracker.pedal_down(-1)


# Each case: input at time 1.0 after a note-on at 0.0, and whether it counts as activity.
ACTIVITY_CASES = {
    "note-on": (on(62), True),
    "note-off": (off(60), True),
    "velocity-0 note-on": (on(60, 0), True),
    "pedal down": (pedal(True), True),
    "orphan note-off": (off(61), False),
    "pedal already up": (cc(64, 10), False),
    "CC123 ending a note": (cc(123, 0), True),
    "CC123 on a silent channel": (cc(123, 0, channel=4), False),
    "modulation wheel": (cc(1, 64), False),
    "clock": ([0xF8], False),
    "pitch bend": ([0xE0, 0, 64], False),
    "garbage": ([0x42, 0x300, -5], False),
}


@pytest.mark.parametrize("data, counts", ACTIVITY_CASES.values(), ids=ACTIVITY_CASES.keys())
def test_last_activity_time(data: list[int], counts: bool) -> None:
    tracker = NoteTracker()
    assert tracker.last_activity_time is None
    tracker.feed_bytes(on(60), 0.0)
    tracker.feed_bytes(data, 1.0)
    assert tracker.last_activity_time == (1.0 if counts else 0.0)


def test_pedal_up_is_activity() -> None:
    tracker = NoteTracker()
    play(tracker, [(0.0, pedal(True)), (1.0, on(60)), (2.0, off(60))])
    assert tracker.last_activity_time == 2.0
    tracker.feed_bytes(pedal(False), 7.0)
    assert tracker.last_activity_time == 7.0


def test_flush_ends_held_and_sustained_notes_in_onset_order() -> None:
    tracker = NoteTracker()
    play(tracker, [(0.0, pedal(True)), (1.0, on(60)), (2.0, on(72)), (2.0, on(55, channel=3)), (3.0, off(60))])
    assert tracker.flush(10.0) == (
        Note(60, 100, 1.0, 9.0),
        Note(55, 100, 2.0, 8.0, channel=3),
        Note(72, 100, 2.0, 8.0),
    )
    assert (tracker.keys_down, tracker.sounding) == (0, 0)
    assert tracker.pedal_down(0), "flush ends notes; the pedal is still physically down"
    assert tracker.last_activity_time == 3.0, "flush is not player activity"
    assert tracker.flush(11.0) == ()
    assert tracker.feed_bytes(off(72), 12.0) == (), "the flushed key's note-off is now an orphan"


def test_reset_forgets_everything() -> None:
    tracker = NoteTracker()
    play(tracker, [(0.0, pedal(True, channel=2)), (1.0, on(60)), (1.0, on(61, channel=2))])
    tracker.reset()
    assert (tracker.keys_down, tracker.sounding, tracker.pedal_down(2), tracker.last_activity_time) == (
        0, 0, False, None
    )
    assert tracker.flush(2.0) == ()
    assert tracker.feed_bytes(off(60), 2.0) == ()
    play(tracker, [(3.0, on(61, channel=2)), (4.0, off(61, channel=2))])
    assert tracker.sounding == 0, "after reset the pedal no longer sustains"


# Raw input that must be read as exactly these outputs (time 1.0).
RAW_CASES = {
    "empty": ([], ()),
    "status only": ([0x90], ()),
    "truncated note-on": ([0x90, 60], ()),
    "note-on": ([0x93, 60, 100], (NoteStarted(60, 100, 1.0, 3),)),
    "running status": ([0x90, 60, 100, 64, 90], (NoteStarted(60, 100, 1.0), NoteStarted(64, 90, 1.0))),
    "clock inside a note-on": ([0x90, 0xF8, 60, 0xFE, 100], (NoteStarted(60, 100, 1.0),)),
    "trailing clock": ([0x90, 60, 100, 0xF8], (NoteStarted(60, 100, 1.0),)),
    "data byte > 127 is a new status": ([0x90, 200, 100], ()),
    "truncated message then a note-on": ([0x90, 61, 0x91, 60, 100], (NoteStarted(60, 100, 1.0, 1),)),
    "stray data bytes first": ([60, 100, 0x90, 60, 100], (NoteStarted(60, 100, 1.0),)),
    "sysex holding note-like data": ([0xF0, 0x7E, 60, 100, 0xF7], ()),
    "status byte ends a sysex": ([0xF0, 0x7E, 0x90, 60, 100], (NoteStarted(60, 100, 1.0),)),
    "system common cancels running status": ([0x90, 60, 100, 0xF2, 1, 2, 64, 100], (NoteStarted(60, 100, 1.0),)),
    "song position pointer": ([0xF2, 0x10, 0x20], ()),
    "ints outside 0-255": ([0x190, 60, 100, -1, 60, 100, 1000], ()),
    "ints outside 0-255 cancel running status": ([0x90, 60, 100, -1, 100, 0x100, 64, 100],
                                                (NoteStarted(60, 100, 1.0),)),
    "program change then note data": ([0xC0, 5, 60, 100], ()),
    "channel pressure": ([0xD0, 100], ()),
    "poly aftertouch": ([0xA0, 60, 100], ()),
    "pitch bend": ([0xE0, 0, 127], ()),
    "bytes object": (bytes([0x90, 60, 100]), (NoteStarted(60, 100, 1.0),)),
}


@pytest.mark.parametrize("data, expected", RAW_CASES.values(), ids=RAW_CASES.keys())
def test_feed_bytes_reads_only_complete_channel_messages(data: list[int], expected: tuple[object, ...]) -> None:
    assert NoteTracker().feed_bytes(data, 1.0) == expected


def test_nothing_happening_returns_the_shared_empty_tuple() -> None:
    tracker = NoteTracker()
    first = tracker.feed_bytes([0xF8], 0.0)
    second = tracker.feed_bytes(off(60), 0.0)
    assert first == () and first is second


def test_feed_takes_mido_messages() -> None:
    tracker = NoteTracker()
    messages = [
        (0.0, mido.Message("control_change", channel=1, control=64, value=127)),
        (1.0, mido.Message("note_on", channel=1, note=60, velocity=70)),
        (1.5, mido.Message("clock")),
        (1.5, mido.Message("sysex", data=[1, 2, 3])),
        (1.5, mido.Message("pitchwheel", channel=1, pitch=-8192)),
        (1.5, mido.Message("aftertouch", channel=1, value=3)),
        (1.5, mido.Message("polytouch", channel=1, note=60, value=3)),
        (1.5, mido.Message("program_change", channel=1, program=12)),
        (1.5, mido.Message("songpos", pos=100)),
        (2.0, mido.Message("note_off", channel=1, note=60)),
        (3.0, mido.Message("control_change", channel=1, control=64, value=0)),
    ]
    outputs = [output for time, msg in messages for output in tracker.feed(msg, time)]
    assert outputs == [NoteStarted(60, 70, 1.0, 1), Note(60, 70, 1.0, 2.0, 1)]


_CHANNEL_MESSAGES = st.one_of(
    st.builds(lambda c, n, v: mido.Message("note_on", channel=c, note=n, velocity=v),
              st.integers(0, 2), st.integers(58, 62), st.integers(0, 127)),
    st.builds(lambda c, n: mido.Message("note_off", channel=c, note=n), st.integers(0, 2), st.integers(58, 62)),
    st.builds(lambda c, k, v: mido.Message("control_change", channel=c, control=k, value=v),
              st.integers(0, 2), st.sampled_from([1, 64, 120, 121, 123, 127]), st.integers(0, 127)),
    st.builds(lambda c, p: mido.Message("pitchwheel", channel=c, pitch=p), st.integers(0, 2), st.integers(-8192, 8191)),
    st.builds(lambda d: mido.Message("sysex", data=d), st.lists(st.integers(0, 127), max_size=4)),
    st.just(mido.Message("clock")),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_CHANNEL_MESSAGES, max_size=40))
def test_one_byte_stream_reads_like_its_messages_one_by_one(messages: list[mido.Message]) -> None:
    one_by_one = NoteTracker()
    expected = [output for msg in messages for output in one_by_one.feed(msg, 1.0)]
    stream = NoteTracker()
    assert list(stream.feed_bytes([b for msg in messages for b in msg.bytes()], 1.0)) == expected
    assert (stream.keys_down, stream.sounding) == (one_by_one.keys_down, one_by_one.sounding)


def _random_raw(rng: random.Random) -> list[int]:
    """Half arbitrary bytes (mostly invalid), half well-formed messages about a few keys."""
    if rng.random() < 0.5:
        return [rng.randrange(256) for _ in range(rng.randrange(5))]
    channel = rng.randrange(3)
    kind = rng.random()
    if kind < 0.35:
        return on(rng.randrange(58, 63), rng.choice([0, 1, 64, 127]), channel)
    if kind < 0.65:
        return off(rng.randrange(58, 63), channel)
    if kind < 0.85:
        return cc(64, rng.randrange(128), channel)
    if kind < 0.9:
        return cc(rng.choice([120, 121, 123]), 0, channel)
    return [rng.choice([0xF8, 0xFA, 0xFC, 0xFE, 0xFF])]


def _mido_accepts(data: list[int]) -> bool:
    try:
        mido.Message.from_bytes(data)
    except (ValueError, TypeError, KeyError, IndexError):
        return False
    return True


def test_ten_thousand_random_messages_never_raise_and_pair_up() -> None:
    rng = random.Random(20240501)
    tracker = NoteTracker()
    via_mido = NoteTracker()  # same input, valid messages through feed(mido.Message)
    open_notes: dict[tuple[int, int], NoteStarted] = {}
    started = finished = rejected = 0
    time = 0.0

    def check(outputs: tuple[Note | NoteStarted, ...]) -> None:
        nonlocal started, finished
        for output in outputs:
            if isinstance(output, NoteStarted):
                key = (output.channel, output.pitch)
                assert key not in open_notes, f"{output} while {open_notes.get(key)} still sounds"
                open_notes[key] = output
                started += 1
            else:
                announced = open_notes.pop((output.channel, output.pitch))
                assert (output.velocity, output.start) == (announced.velocity, announced.time)
                assert output.duration >= 0
                finished += 1

    for _ in range(10_000):
        time += rng.choice([0.0, 0.001, 0.25, -0.01])  # sometimes simultaneous, sometimes backwards
        data = _random_raw(rng)
        outputs = tracker.feed_bytes(data, time)
        check(outputs)
        if _mido_accepts(data):
            assert via_mido.feed(mido.Message.from_bytes(data), time) == outputs
        else:
            rejected += 1
            assert via_mido.feed_bytes(data, time) == outputs
        assert tracker.sounding == len(open_notes)
        assert 0 <= tracker.keys_down <= tracker.sounding

    check(tracker.flush(time + 1.0))
    assert open_notes == {}
    assert (tracker.sounding, tracker.keys_down) == (0, 0)
    assert started == finished > 500, "the fuzz should exercise many notes"
    assert rejected > 2000, "the fuzz should include many messages mido rejects"


def test_expire_ends_only_notes_older_than_the_limit() -> None:
    tracker = NoteTracker()
    tracker.feed_bytes([0x90, 60, 100], 0.0)
    tracker.feed_bytes([0xB0, 64, 127], 1.0)
    tracker.feed_bytes([0x90, 64, 90], 5.0)
    tracker.feed_bytes([0x80, 64, 0], 6.0)  # sustained by the pedal
    assert tracker.expire(7.0, 8.0) == ()
    ended = tracker.expire(9.0, 8.0)
    assert [(n.pitch, n.duration) for n in ended] == [(60, 9.0)]
    assert tracker.keys_down == 0 and tracker.sounding == 1 and tracker.pedal_down(0)
    assert [n.pitch for n in tracker.expire(14.0, 8.0)] == [64]
    assert tracker.sounding == 0
