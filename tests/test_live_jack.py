"""The instrument over real JACK MIDI: improv as a subprocess and in-process, played by outside clients."""

from __future__ import annotations

import random
import signal
import time
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from improv.cli import build_parser
from improv.live.session import LiveSession
from support.live import balance, improv_process, keyboard, listener, note_ons

pytestmark = pytest.mark.jack

PHRASE = [60, 62, 64, 65, 67, 69, 67, 65]


def test_a_phrase_then_the_gap_gets_an_answer(jack_server, tiny_model_file) -> None:
    with improv_process(jack_server, tiny_model_file, "--gap", "300", "--reply-notes", "12", "--random-seed", "1") as improv:
        with listener() as synth, keyboard() as keys:
            keys.phrase(PHRASE)
            finished = time.monotonic()
            line = improv.wait_line(r"^reply ", 10)
            got = synth.wait_for(lambda m: len(note_ons(m)) >= 12 and not balance(m), 10)
    ons = note_ons(got)
    assert len(ons) == 12
    assert ons[0].time_s - finished >= 0.25  # not before the gap
    assert all(21 <= m.data[1] <= 108 for m in ons)
    assert "12 notes" in line and "T 1.00" in line and "latency" in line


def test_playing_during_the_reply_interrupts_it(jack_server, tiny_model_file) -> None:
    with improv_process(jack_server, tiny_model_file, "--gap", "300", "--reply-notes", "64", "--random-seed", "2") as improv:
        with listener() as synth, keyboard() as keys:
            keys.phrase(PHRASE[:4])
            synth.wait_for(lambda m: len(note_ons(m)) >= 3, 10)
            keys.send(0x90, 72, 100)
            cut = time.monotonic()
            line = improv.wait_line(r"interrupted", 5)
            time.sleep(0.5)
            got = synth.messages
            keys.send(0x80, 72, 0)
    assert not balance(got), "every reply note must be released"
    late = [m for m in note_ons(got) if m.time_s > cut + 0.3]  # generous: shared CI machines stall
    assert late == [], f"no reply notes after the player starts again: {[(round(m.time_s - cut, 3), m.data.hex()) for m in note_ons(got)]}"
    assert int(line.split()[1]) < 64


def test_the_modulation_wheel_sets_the_temperature(jack_server, tiny_model_file) -> None:
    with improv_process(jack_server, tiny_model_file, "--gap", "300") as improv:
        with keyboard() as keys:
            keys.send(0xB0, 1, 127)
            assert "temperature 3.00" in improv.wait_line(r"^temperature ", 5)
            keys.send(0xB0, 1, 0)
            assert "temperature 0.10" in improv.wait_line(r"^temperature ", 5)
            keys.send(0xB0, 1, 64)
            assert "temperature 1.00" in improv.wait_line(r"^temperature ", 5)


@pytest.mark.parametrize("signals", [(signal.SIGTERM,), (signal.SIGINT,), (signal.SIGINT, signal.SIGINT),
                                     (signal.SIGINT, signal.SIGTERM)],
                         ids=["SIGTERM", "SIGINT", "SIGINT-twice", "SIGINT-then-SIGTERM"])
def test_a_signal_in_the_middle_of_a_reply_leaves_nothing_sounding(jack_server, tiny_model_file, signals) -> None:
    """Also an impatient second Ctrl-C (or a SIGTERM) 5 ms later: it must not cut the silencing short."""
    with improv_process(jack_server, tiny_model_file, "--gap", "300", "--reply-notes", "64", "--random-seed", "3") as improv:
        with listener() as synth, keyboard() as keys:
            keys.phrase(PHRASE[:4])
            synth.wait_for(lambda m: len(note_ons(m)) >= 4, 10)
            for signum in signals[:-1]:
                improv.proc.send_signal(signum)
                time.sleep(0.005)
            code = improv.signal(signals[-1])
            got = synth.wait_for(lambda m: any(x.data[:2] == bytes([0xB0, 123]) for x in m), 5)
    assert code in (130, 128 + signals[0], -signals[0], 0)
    assert note_ons(got)
    assert not balance(got)


def live_session(server, model: Path, *extra: str) -> LiveSession:
    args = build_parser().parse_args(["--api", "jack", "--model", str(model), *extra])
    return LiveSession(args)


def test_an_exception_in_the_engine_releases_every_note(jack_server, tiny_model_file, tmp_path) -> None:
    session = live_session(jack_server, tiny_model_file, "--gap", "300", "--reply-notes", "64", "--config", str(tmp_path / "c.toml"))
    with session, listener() as synth, keyboard() as keys:
        real_sample = session.engine.improviser.sample
        calls = 0

        def failing_sample(*args, **kwargs):
            nonlocal calls
            calls += 1
            if calls > 6:
                raise RuntimeError("injected failure")
            return real_sample(*args, **kwargs)

        session.engine.improviser.sample = failing_sample
        session.start()
        keys.phrase(PHRASE[:4])
        got = synth.wait_for(lambda m: any(x.data[:2] == bytes([0xB0, 123]) for x in m), 10)
        deadline = time.monotonic() + 5
        while session.engine.running and time.monotonic() < deadline:
            time.sleep(0.01)
    assert isinstance(session.engine.failed, RuntimeError)
    assert note_ons(got)
    assert not balance(got)


def test_an_input_port_that_disappears_and_returns_is_reconnected(jack_server, tiny_model_file, tmp_path) -> None:
    from support.jack_server import open_midi_out, open_virtual

    name = "hotplug-keys"
    with open_midi_out(name) as client:
        open_virtual(client, "out")
        session = live_session(jack_server, tiny_model_file, "--in", "hotplug-keys:out", "--gap", "300",
                               "--reply-notes", "4", "--config", str(tmp_path / "c.toml"))
    with session, listener() as synth:
        session.start()
        message = session.messages.get(timeout=5)
        assert "disconnected" in message and session.input.connected is False
        with open_midi_out(name) as client:
            open_virtual(client, "out")
            message = session.messages.get(timeout=5)
            assert "reconnected" in message and session.input.connected is True
            for pitch in PHRASE[:4]:
                client.send_message([0x90, pitch, 90])
                time.sleep(0.1)
                client.send_message([0x80, pitch, 0])
            got = synth.wait_for(lambda m: len(note_ons(m)) >= 4 and not balance(m), 10)
    assert len(note_ons(got)) == 4


def test_an_output_that_returns_is_told_all_notes_off(jack_server, tiny_model_file, tmp_path) -> None:
    """A note-off sent while the synth was gone never arrived: when it returns, CC123 on the channels used."""
    from support.jack_server import MidiRecorder

    with MidiRecorder("hotplug-synth") as synth:
        session = live_session(jack_server, tiny_model_file, "--out", "hotplug-synth:in", "--gap", "200",
                               "--reply-notes", "4", "--out-channel", "3", "--config", str(tmp_path / "c.toml"))
        with session, keyboard() as keys:
            session.start()
            keys.phrase(PHRASE[:3], step_s=0.1, hold_s=0.08)
            synth.wait_for(lambda m: len(note_ons(m)) >= 1, 10)
            synth.__exit__(None, None, None)  # the synth goes away in the middle of the answer
            assert "disconnected" in session.messages.get(timeout=5)
            with MidiRecorder("hotplug-synth") as back:
                assert "reconnected" in session.messages.get(timeout=5)
                got = back.wait_for(lambda m: any(x.data[:2] == bytes([0xB2, 123]) for x in m), 5)
    assert all(x.data[0] & 0x0F == 2 for x in got)  # only the channel improv plays on


def test_random_messages_through_the_input_path_break_nothing(jack_server, tiny_model_file, tmp_path) -> None:
    rng = random.Random(5)
    session = live_session(jack_server, tiny_model_file, "--gap", "50", "--reply-notes", "4", "--thru",
                           "--config", str(tmp_path / "c.toml"))
    # Garbage leaves keys "down" whose note-off never comes; the engine takes them as released
    # after stale_key_s (8 s by default), shortened here to keep the test quick.
    session.engine.settings = replace(session.engine.settings, stale_key_s=1.0)
    with session, listener() as synth, keyboard() as keys:
        session.start()
        t = time.monotonic()
        for i in range(100_000):
            if rng.random() < 0.5:
                data = [rng.randrange(256) for _ in range(rng.randrange(0, 5))]
            else:
                data = [rng.choice((0x80, 0x90, 0xB0, 0xE0, 0xF8)) | rng.randrange(16), rng.randrange(128), rng.randrange(128)]
            session.engine.push(data, t + i * 1e-5)
            if i % 2000 == 0:
                time.sleep(0.001)  # let the engine keep up, as a real flood's gaps would
        # Through the real port too: random bytes (sysex starts among them), then notes played inside
        # an unterminated sysex (rtmidi joins them into it), then its end, then clean playing again.
        for i in range(5_000):
            keys.send(*[rng.randrange(256) for _ in range(rng.randrange(1, 4))])
            if i % 500 == 0:
                time.sleep(0.005)
        keys.send(0xF0, 0x7D, 0x01)
        keys.phrase(PHRASE[:2], step_s=0.05, hold_s=0.03)
        keys.send(0xF7)
        time.sleep(1.5)
        synth.clear()
        keys.phrase(PHRASE[:4])
        synth.wait_for(lambda m: len(note_ons(m)) >= 8 and not balance(m), 10)
        assert session.engine.failed is None
        session.close()
        everything = synth.messages
    assert not balance(everything)


def test_the_knob_makes_replies_more_varied(jack_server, tmp_path) -> None:
    """CC1 low vs high, same seeds, shipped model: high temperature answers with more distinct pitches."""
    from improv.model.shipped import default_model_path

    distinct = {}
    for cc in (0, 127):
        session = live_session(jack_server, default_model_path(), "--gap", "200", "--reply-notes", "24",
                               "--random-seed", "4", "--config", str(tmp_path / "c.toml"))
        with session, listener() as synth, keyboard() as keys:
            session.start()
            keys.send(0xB0, 1, cc)
            pitches: list[int] = []
            for _ in range(3):
                synth.clear()
                keys.phrase([60, 64, 67, 65, 62, 60], step_s=0.15, hold_s=0.1)
                # All 24 struck is enough: the next phrase cuts the answer's last notes short.
                got = synth.wait_for(lambda m: len(note_ons(m)) >= 24, 20)
                pitches.append(len({m.data[1] for m in note_ons(got)}))
                # Past the echo window: struck within 30 ms of improv's last note, at its key and velocity
                # (answers take the player's), the next phrase's first note would pass for improv's echo.
                time.sleep(0.1)
        distinct[cc] = pitches
    assert sum(distinct[127]) > sum(distinct[0]) + 6, distinct


def test_improv_learn_saves_the_next_cc_moved(jack_server, tiny_model_file, tmp_path) -> None:
    import subprocess
    import sys

    config = tmp_path / "config.toml"
    env = jack_server.env()
    proc = subprocess.Popen([sys.executable, "-m", "improv", "learn", "temperature", "--api", "jack",
                             "--model", str(tiny_model_file), "--config", str(config), "--timeout", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert "move the control" in proc.stdout.readline()
        with keyboard() as keys:
            keys.send(0x90, 60, 100)  # a note is not a control for a knob action
            keys.send(0xB0, 74, 20)
            line = proc.stdout.readline()
            if not line:  # the process ended: say how
                proc.wait(10)
                raise AssertionError(f"improv learn exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
            assert "learned temperature on CC 74" in line
        # Closing rtmidi's JACK clients can stall for seconds on a loaded machine: allow for it.
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert tomllib.loads(config.read_text())["controls"]["temperature"] == {"cc": 74}


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--in", "no-such-port-anywhere"], "no MIDI input matches"),
        (["--temp-cc", "200"], "--temp-cc"),
        (["--model", "/nonexistent/model.pt"], "/nonexistent/model.pt"),
        (["--model", "{tmp}/notes.pt"], "notes.pt"),
        (["--config", "{tmp}/broken.toml"], "broken.toml"),
    ],
    ids=["unknown-port", "bad-cc", "missing-model", "not-a-model", "broken-config"],
)
def test_bad_arguments_give_one_line_and_exit_2(jack_server, tmp_path, args: list[str], expected: str) -> None:
    import subprocess
    import sys

    (tmp_path / "notes.pt").write_text("shopping list: milk, eggs\n")
    (tmp_path / "broken.toml").write_text("[controls\ntemperature = { cc = \n")
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    result = subprocess.run([sys.executable, "-m", "improv", "--headless", "--api", "jack", *args],
                            capture_output=True, text=True, env=jack_server.env(), timeout=60)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("improv:")]
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_record_saves_the_session_as_two_tracks_on_exit(jack_server, tiny_model_file, tmp_path) -> None:
    out = tmp_path / "sessions"
    with improv_process(jack_server, tiny_model_file, "--gap", "300", "--reply-notes", "6", "--random-seed", "4",
                        "--record", str(out)) as improv:
        with keyboard() as keys:
            keys.phrase(PHRASE[:4])
            improv.wait_line(r"^reply ", 10)
        improv.signal(signal.SIGTERM)
        saved = improv.wait_line(r"^session saved to ", 10)
    from improv.midi.files import read_midi_tracks

    [path] = list(out.glob("session-*.mid"))
    assert str(path) in saved
    tracks = read_midi_tracks(path)
    assert [n.pitch for n in tracks["player"]] == PHRASE[:4]
    assert len(tracks["improv"]) == 6
