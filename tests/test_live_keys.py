"""Over real JACK MIDI: improv's output never strikes a key that is already sounding (issue 18)."""

from __future__ import annotations

import random
import signal
import time

import pytest

from support.live import balance, improv_process, keyboard, listener, note_ons

pytestmark = pytest.mark.jack


def restrikes(messages) -> list[tuple[int, int]]:
    """(channel, pitch) of every note-on heard while that key was sounding, as an outside client hears it."""
    sounding: set[tuple[int, int]] = set()
    found = []
    for m in messages:
        if len(m.data) != 3 or m.data[0] & 0xF0 not in (0x80, 0x90):
            continue
        key = (m.data[0] & 0x0F, m.data[1])
        if m.data[0] & 0xF0 == 0x90 and m.data[2] > 0:
            if key in sounding:
                found.append(key)
            sounding.add(key)
        else:
            sounding.discard(key)
    return found


def test_a_duet_with_thru_and_the_pedal_strikes_no_key_twice(jack_server, tiny_model_file) -> None:
    rng = random.Random(18)
    with improv_process(jack_server, tiny_model_file, "--mode", "duet", "--thru", "--gap", "300",
                        "--random-seed", "4") as improv:
        with listener() as synth, keyboard() as keys:
            held: list[int] = []
            for i in range(60):  # the player re-strikes keys, overlaps notes, and works the pedal
                pitch = rng.randrange(58, 66)
                keys.send(0x90, pitch, rng.randrange(40, 110))
                held.append(pitch)
                if i % 16 == 0:
                    keys.send(0xB0, 64, 127 if i % 32 == 0 else 0)
                time.sleep(rng.choice((0.0, 0.03, 0.08)))
                if len(held) > 2:
                    keys.send(0x80, held.pop(0), 0)
            for pitch in held:
                keys.send(0x80, pitch, 0)
            keys.send(0xB0, 64, 0)
            time.sleep(1.0)
            improv.signal(signal.SIGTERM)
            got = synth.wait_for(lambda m: any(x.data[:2] == bytes([0xB0, 123]) for x in m), 5)
    assert len(note_ons(got)) > 60  # the player's notes and the duet's
    assert restrikes(got) == []
    assert not balance(got)
