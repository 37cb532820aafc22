"""The MIDI port layer: API choice, name matching, and real MIDI over a private JACK server."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import rtmidi

from improv import cli
from improv.midi import apis
from improv.midi import ports as midi_io
from improv.cli import ports as ports_cli
from improv.errors import PortError
from support.jack_server import (
    JackServer,
    MidiRecorder,
    connect_ports,
    open_midi_out,
    open_virtual,
    unique_client_name,
)
from improv.midi.ports import PortWatcher, match_port, open_input, open_output, parse_api

# Every JACK client name carries the pid (unique_client_name): same-named JACK
# clients opened at once by parallel test runs break each other, even across
# servers. That includes improv's own client, so tests never use "improv".


class Inbox:
    """An input callback that records (data, time_s) and lets a test wait for it."""

    def __init__(self) -> None:
        self.received: list[tuple[list[int], float]] = []
        self._changed = threading.Condition()

    def __call__(self, data: list[int], time_s: float) -> None:
        with self._changed:
            self.received.append((data, time_s))
            self._changed.notify_all()

    def wait_for_count(self, count: int, timeout_s: float = 2.0) -> list[tuple[list[int], float]]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.received) >= count, timeout_s):
                raise TimeoutError(f"got {len(self.received)} of {count} messages: {self.received}")
            return list(self.received)

    def clear(self) -> None:
        with self._changed:
            self.received.clear()

    def wait_for_notes(self, count: int, timeout_s: float = 2.0) -> list[list[int]]:
        """The first `count` messages that are not clock ticks (late ticks from
        wait_until_routed may still arrive)."""
        with self._changed:
            notes = lambda: [data for data, _ in self.received if data != [0xF8]]  # noqa: E731
            if not self._changed.wait_for(lambda: len(notes()) >= count, timeout_s):
                raise TimeoutError(f"got {len(notes())} of {count} messages: {self.received}")
            return notes()


def wait_until_routed(send_tick: Callable[[], object], count: Callable[[], int], timeout_s: float = 2.0) -> None:
    """Send clock ticks until one arrives.

    JACK applies a connection a cycle or more after jack_connect returns (rtmidi's
    open_port, so also improv's open and reconnect); MIDI sent in between is lost.
    """
    deadline = time.monotonic() + timeout_s
    while count() == 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no clock tick got through within {timeout_s} s")
        send_tick()
        time.sleep(0.01)


@contextlib.contextmanager
def outside_output(client_name: str) -> Iterator[tuple[rtmidi.MidiOut, str]]:
    """Another program's MIDI output (a JACK source): the client and its full port name."""
    with open_midi_out(client_name) as client:
        yield client, open_virtual(client, "out")


def improv_name() -> str:
    return unique_client_name("improv")


# --- choosing the API (no JACK needed) -------------------------------------------


@pytest.mark.parametrize(
    ("name", "platform", "expected"),
    [
        ("jack", None, rtmidi.API_UNIX_JACK),
        ("JACK", None, rtmidi.API_UNIX_JACK),
        ("alsa", None, rtmidi.API_LINUX_ALSA),
        ("auto", "linux", rtmidi.API_LINUX_ALSA),
        (" auto ", "linux", rtmidi.API_LINUX_ALSA),
    ],
)
def test_parse_api_names(name: str, platform: str | None, expected: int) -> None:
    assert parse_api(name, platform) == expected


def test_parse_api_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(midi_io.API_ENV, "jack")
    assert parse_api() == rtmidi.API_UNIX_JACK
    assert parse_api("alsa") == rtmidi.API_LINUX_ALSA  # an explicit --api wins
    monkeypatch.delenv(midi_io.API_ENV)
    assert parse_api(None, "linux") == rtmidi.API_LINUX_ALSA  # auto


@pytest.mark.parametrize(
    ("name", "platform", "message"),
    [
        ("fluidsynth", None, "unknown MIDI API 'fluidsynth'; choose one of auto, alsa, jack, coremidi, winmm"),
        ("coremidi", None, "MIDI API 'coremidi' is not available in this python-rtmidi build; available: alsa, jack"),
        ("auto", "darwin", "MIDI API 'coremidi' is not available"),
        ("auto", "win32", "MIDI API 'winmm' is not available"),
    ],
)
def test_parse_api_errors_name_the_choices(name: str, platform: str | None, message: str) -> None:
    with pytest.raises(PortError) as failure:
        parse_api(name, platform)
    assert str(failure.value).startswith(message)
    assert "\n" not in str(failure.value)


def test_bad_api_in_the_environment_says_where_it_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(midi_io.API_ENV, "jackd")
    with pytest.raises(PortError, match=r"unknown MIDI API 'jackd' \(from \$IMPROV_MIDI_API\)"):
        parse_api()


def test_missing_alsa_sequencer_suggests_jack(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(apis, "ALSA_SEQ_DEVICE", "/nonexistent/snd/seq")
    monkeypatch.delenv(midi_io.API_ENV, raising=False)
    assert cli.main(["ports"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1  # one line, no traceback
    assert err.startswith("improv: cannot use the ALSA sequencer (/nonexistent/snd/seq does not exist)")
    assert "--api jack" in err


# --- matching names (no JACK needed) ------------------------------------------------

PORTS = ["KeyStep Pro:out", "Arturia BeatStep:out", "Midi Through:out", "Midi Through:out2"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("KeyStep", "KeyStep Pro:out"),
        ("keystep", "KeyStep Pro:out"),  # case-insensitive
        ("BEATSTEP:OUT", "Arturia BeatStep:out"),
        ("Midi Through:out", "Midi Through:out"),  # an exact name beats the longer one it is part of
        ("midi through:out", "Midi Through:out"),  # ... in any case
        ("out2", "Midi Through:out2"),
    ],
)
def test_match_port_picks_one(spec: str, expected: str) -> None:
    assert match_port(spec, PORTS) == expected


def test_match_port_with_no_match_lists_the_ports() -> None:
    with pytest.raises(PortError) as failure:
        match_port("Launchpad", PORTS, "input")
    assert str(failure.value) == (
        "no MIDI input matches 'Launchpad'; inputs: KeyStep Pro:out, Arturia BeatStep:out, "
        "Midi Through:out, Midi Through:out2; run 'improv ports' to list them"
    )


def test_match_port_with_several_matches_lists_them() -> None:
    with pytest.raises(PortError) as failure:
        match_port("step", PORTS, "output")
    assert str(failure.value) == (
        "MIDI output 'step' matches 2 ports (KeyStep Pro:out, Arturia BeatStep:out); give more of the name"
    )


def test_match_port_with_no_ports_says_none() -> None:
    with pytest.raises(PortError, match="inputs: none; run 'improv ports'"):
        match_port("KeyStep", [], "input")


def test_empty_port_name_is_refused(jack_server: JackServer) -> None:
    with pytest.raises(PortError, match="empty MIDI input name"):
        open_input(" ", "jack", Inbox(), client_name=improv_name())


# --- virtual ports over JACK ------------------------------------------------------------


def test_virtual_input_delivers_what_another_client_sends(jack_server: JackServer) -> None:
    inbox = Inbox()
    messages = [
        [0x90, 60, 100],
        [0xF8],  # clock: delivered (rtmidi drops it by default)
        [0xFE],  # active sensing: dropped
        [0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7],  # sysex: delivered
        [0x80, 60, 0],
    ]
    with open_input(None, "jack", inbox, client_name=improv_name()) as midi_in:
        assert midi_in.port_name.startswith(midi_in.client_name) and midi_in.port_name.endswith(":in")
        assert midi_in.description == f"{midi_in.port_name} (virtual)"
        assert midi_in.connected and midi_in.check() is None  # nothing to watch
        with outside_output(unique_client_name("improv-test-keys")) as (keys, source):
            connect_ports(source, midi_in.port_name)
            before = time.monotonic()
            for message in messages:
                keys.send_message(message)
                time.sleep(0.002)
            received = inbox.wait_for_count(4)
            after = time.monotonic()
            time.sleep(0.02)  # room for anything unexpected to arrive too

    assert [data for data, _ in inbox.received] == [m for m in messages if m != [0xFE]]
    times = [time_s for _, time_s in received]
    assert all(isinstance(t, float) for t in times)
    assert times == sorted(times) and before <= times[0] and times[-1] <= after
    assert not midi_in.connected and midi_in.description.endswith("(closed)")


def test_input_times_are_when_messages_arrived_not_when_they_were_collected(jack_server: JackServer) -> None:
    """A callback slower than the messages (40 ms each, one every 25 ms) collects them ever later: their
    times are still when they came in (rtmidi's delta times, `improv.midi.arrival`), as they were
    sent; active sensing in between is counted and dropped."""
    stamps: list[float] = []
    inbox = Inbox()

    def slow(data: list[int], time_s: float) -> None:
        stamps.append(time.monotonic())
        inbox(data, time_s)
        if data[0] == 0x90:
            time.sleep(0.04)

    with open_input(None, "jack", slow, client_name=improv_name()) as midi_in, \
            outside_output(unique_client_name("improv-test-keys")) as (keys, source):
        connect_ports(source, midi_in.port_name)
        wait_until_routed(lambda: keys.send_message([0xF8]), lambda: len(inbox.received))
        time.sleep(0.05)
        inbox.clear()
        stamps.clear()
        sent = []
        for i in range(16):
            sent.append(time.monotonic())
            keys.send_message([0x90, 60 + i, 100])
            time.sleep(0.0125)
            keys.send_message([0xFE])
            time.sleep(0.0125)
        received = inbox.wait_for_count(16, timeout_s=5.0)
    assert [data[1] for data, _ in received] == list(range(60, 76))  # no sensing
    late = [stamp - t for stamp, t in zip(stamps, sent)]
    assert late[-1] > 0.15  # collected well behind: 15 x 15 ms
    errors = [(b - a) - (sb - sa) for (_, a), (_, b), sa, sb in zip(received, received[1:], sent, sent[1:])]
    assert max(abs(e) for e in errors) <= 0.006, [round(e * 1000, 1) for e in errors]  # a JACK period or two
    assert all(t <= stamp for (_, t), stamp in zip(received, stamps))


def test_input_callback_errors_are_counted_not_raised(jack_server: JackServer) -> None:
    calls = []

    def broken(data: list[int], time_s: float) -> None:
        calls.append(data)
        raise RuntimeError("engine bug")

    with open_input(None, "jack", broken, client_name=improv_name()) as midi_in:
        with outside_output(unique_client_name("improv-test-keys")) as (keys, source):
            connect_ports(source, midi_in.port_name)
            keys.send_message([0x90, 60, 1])
            keys.send_message([0x90, 62, 1])
            deadline = time.monotonic() + 2.0
            while midi_in.callback_errors < 2 and time.monotonic() < deadline:
                time.sleep(0.005)
    assert calls == [[0x90, 60, 1], [0x90, 62, 1]]
    assert midi_in.callback_errors == 2
    assert str(midi_in.last_callback_error) == "engine bug"


def test_virtual_output_reaches_another_client(jack_server: JackServer) -> None:
    with open_output(None, "jack", client_name=improv_name()) as midi_out, MidiRecorder() as recorder:
        assert midi_out.port_name.endswith(":out")
        assert midi_out.description == f"{midi_out.port_name} (virtual)"
        connect_ports(midi_out.port_name, recorder.port)
        assert midi_out.send([0x90, 64, 90]) is True
        assert midi_out.send((0xB0, 64, 127)) is True
        assert midi_out.send(bytes([0x80, 64, 0])) is True
        received = recorder.wait_for_count(3)
        with pytest.raises(ValueError):
            midi_out.send([])  # a caller's bug, not a lost port
    assert [m.data for m in received] == [b"\x90\x40\x5a", b"\xb0\x40\x7f", b"\x80\x40\x00"]
    assert midi_out.dropped == 0
    midi_out.close()  # again: fine
    assert midi_out.send([0x90, 64, 90]) is False
    assert midi_out.dropped == 1


def test_send_racing_close_drops_instead_of_crashing(jack_server: JackServer) -> None:
    """rtmidi crashes on use after delete(); the lock makes close and send take turns."""
    midi_out = open_output(None, "jack", client_name=improv_name())
    results: list[bool] = []

    def play() -> None:
        for _ in range(400):
            results.append(midi_out.send([0xF8]))
            time.sleep(0.0005)

    player = threading.Thread(target=play)
    player.start()
    time.sleep(0.02)
    midi_out.close()
    player.join()
    assert results[0] is True and results[-1] is False
    assert midi_out.dropped == results.count(False) > 0


# --- opening existing ports by name ----------------------------------------------------------


def test_input_by_name_fragment_connects_to_the_one_match(jack_server: JackServer) -> None:
    inbox = Inbox()
    keystep = unique_client_name("KeyStep-Pro")
    with (
        outside_output(keystep) as (keys, source),
        outside_output(unique_client_name("BeatStep")),
        open_input(keystep.lower(), "jack", inbox, client_name=improv_name()) as midi_in,
    ):
        assert midi_in.port_name == source
        assert midi_in.description == f"{source} connected"
        assert midi_in.connected and midi_in.check() is None
        wait_until_routed(lambda: keys.send_message([0xF8]), lambda: len(inbox.received))
        keys.send_message([0x90, 48, 77])
        assert inbox.wait_for_notes(1) == [[0x90, 48, 77]]


def test_input_by_name_with_several_or_no_matches_lists_the_ports(jack_server: JackServer) -> None:
    name = improv_name()
    first, second = unique_client_name("KeyStep-A"), unique_client_name("KeyStep-B")
    with outside_output(first) as (_, source_a), outside_output(second) as (_, source_b):
        with pytest.raises(PortError) as several:
            open_input("keystep", "jack", Inbox(), client_name=name)
        with pytest.raises(PortError) as none:
            open_input("Launchpad", "jack", Inbox(), client_name=name)
    assert str(several.value).startswith("MIDI input 'keystep' matches 2 ports (")
    assert source_a in str(several.value) and source_b in str(several.value)
    assert str(none.value).startswith("no MIDI input matches 'Launchpad'; inputs: ")
    assert source_a in str(none.value) and str(none.value).endswith("run 'improv ports' to list them")


def test_own_ports_are_never_targets(jack_server: JackServer) -> None:
    """--in improv must not feed improv's own output back into it."""
    name = improv_name()
    with open_output(None, "jack", client_name=name) as midi_out, MidiRecorder() as recorder:
        with pytest.raises(PortError) as failure:
            open_input(name, "jack", Inbox(), client_name=name)
        # a different client name in this process: still excluded (learnt port name)
        with pytest.raises(PortError, match="no MIDI input matches"):
            open_input(midi_out.port_name, "jack", Inbox(), client_name=improv_name())
        with open_output(recorder.port, "jack", client_name=name) as to_recorder:
            assert to_recorder.port_name == recorder.port
    assert midi_out.port_name not in str(failure.value)


# --- improv ports ------------------------------------------------------------------------------


def test_ports_command_lists_inputs_and_outputs(
    jack_server: JackServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The listing clients get a unique name too (see the note at the top).
    monkeypatch.setattr(ports_cli, "list_ports", functools.partial(midi_io.list_ports, client_name=improv_name()))
    with outside_output(unique_client_name("improv-test-keys")) as (_, source), MidiRecorder() as recorder:
        assert cli.main(["ports", "--api", "jack"]) == 0
        listing = capsys.readouterr().out
        monkeypatch.setenv(midi_io.API_ENV, "jack")
        assert cli.main(["ports"]) == 0
        assert capsys.readouterr().out == listing
    lines = listing.splitlines()
    assert lines[0] == "inputs:"
    outputs_at = lines.index("outputs:")
    assert f"  {source}" in lines[1:outputs_at]
    assert f"  {recorder.port}" in lines[outputs_at + 1 :]


def test_format_ports_says_none() -> None:
    assert ports_cli.format_ports([], ["synth:in"]) == "inputs:\n  (none)\noutputs:\n  synth:in"


# --- hot-plug ---------------------------------------------------------------------------------


def test_input_reconnects_when_its_port_returns(jack_server: JackServer) -> None:
    inbox = Inbox()
    keystep = unique_client_name("KeyStep")
    changes: list[str] = []
    watcher = PortWatcher([], on_change=changes.append)
    with outside_output(keystep) as (keys, source):
        midi_in = open_input("keystep", "jack", inbox, client_name=improv_name())
        watcher.ports.append(midi_in)
        wait_until_routed(lambda: keys.send_message([0xF8]), lambda: len(inbox.received))
    with midi_in:
        assert watcher.poll() == [f"input {source!r} disconnected; waiting for it"]
        assert not midi_in.connected
        assert midi_in.description == "waiting for 'keystep'"
        assert watcher.poll() == []  # still away: nothing new to say
        with outside_output(keystep) as (keys, returned):
            assert returned == source
            assert watcher.poll() == [f"input {source!r} reconnected"]
            assert midi_in.connected and midi_in.description == f"{source} connected"
            inbox.clear()
            wait_until_routed(lambda: keys.send_message([0xF8]), lambda: len(inbox.received))
            keys.send_message([0x90, 62, 2])  # the same callback gets it
            assert inbox.wait_for_notes(1) == [[0x90, 62, 2]]
    assert changes == [f"input {source!r} disconnected; waiting for it", f"input {source!r} reconnected"]


def test_output_drops_while_its_port_is_away_and_reconnects(jack_server: JackServer) -> None:
    listener = unique_client_name("Synth")
    with MidiRecorder(client_name=listener) as recorder:
        midi_out = open_output(listener, "jack", client_name=improv_name())
        wait_until_routed(lambda: midi_out.send([0xF8]), lambda: len(recorder.messages))
    with midi_out:
        assert midi_out.check() == f"output {recorder.port!r} disconnected; waiting for it"
        assert midi_out.send([0x90, 61, 1]) is False and midi_out.dropped == 1
        with MidiRecorder(client_name=listener) as returned:
            assert midi_out.check() == f"output {recorder.port!r} reconnected"
            wait_until_routed(lambda: midi_out.send([0xF8]), lambda: len(returned.messages))
            assert midi_out.send([0x90, 62, 1])
            received = returned.wait_for(lambda ms: any(m.data != b"\xf8" for m in ms))
            assert [m.data for m in received if m.data != b"\xf8"] == [b"\x90\x3e\x01"]


def test_watcher_thread_reports_a_lost_port(jack_server: JackServer) -> None:
    changes: list[str] = []
    reported = threading.Event()

    def on_change(message: str) -> None:
        changes.append(message)
        reported.set()

    with outside_output(unique_client_name("KeyStep")) as (_, source):
        midi_in = open_input(source, "jack", Inbox(), client_name=improv_name())
    with midi_in, PortWatcher([midi_in], on_change, interval_s=0.02):
        assert reported.wait(2.0)
    assert changes == [f"input {source!r} disconnected; waiting for it"]
