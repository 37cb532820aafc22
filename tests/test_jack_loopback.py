"""Real MIDI through a private JACK server: the ground the MIDI tests stand on."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import rtmidi

from improv.errors import PortError
from support.jack_server import (
    JackServer,
    JackServerError,
    MidiRecorder,
    connect_ports,
    find_ports,
    jackd_pids,
    open_midi_in,
    open_midi_out,
    open_virtual,
    registered_servers,
    unique_client_name,
    wait_for_connection,
    wait_for_port,
)

pytestmark = pytest.mark.jack

# Client names carry the pid (unique_client_name): same-named JACK clients
# opened at once by parallel test runs break each other, even across servers.

PHRASE = [
    bytes([0x90, 60, 100]),  # note on C4
    bytes([0x90, 64, 90]),
    bytes([0xB0, 64, 127]),  # sustain pedal down
    bytes([0x80, 60, 0]),  # note off C4
    bytes([0x80, 64, 0]),
    bytes([0xE0, 0x00, 0x40]),  # pitch bend centre
    bytes([0xB0, 64, 0]),
]


def send_spaced(
    midi_out: rtmidi.MidiOut, messages: list[bytes], gap_s: float = 0.002
) -> list[float]:
    """Send each message and return the monotonic time taken just before it."""
    sent_at = []
    for message in messages:
        sent_at.append(time.monotonic())
        midi_out.send_message(list(message))
        time.sleep(gap_s)
    return sent_at


def test_virtual_output_reaches_recorder_in_order(jack_server: JackServer) -> None:
    sender_name = unique_client_name("improv-test-sender")
    with open_midi_out(sender_name) as sender, MidiRecorder() as recorder:
        source = open_virtual(sender, "out")
        connect_ports(source, recorder.port)
        connect_ports(source, recorder.port, jack_server.name)  # again: already connected is fine
        sent_at = send_spaced(sender, PHRASE)
        received = recorder.wait_for_count(len(PHRASE))

    assert [message.data for message in received] == PHRASE
    times = [message.time_s for message in received]
    assert times == sorted(times)
    for sent, got in zip(sent_at, times):
        assert sent <= got < sent + 1.0  # after its send, and not absurdly late


def test_output_opened_by_pattern_reaches_recorder(jack_server: JackServer) -> None:
    """The path improv itself takes: find the destination by pattern, open it by index."""
    listener = unique_client_name("improv-test-listener")
    player_name = unique_client_name("improv-test-player")
    with MidiRecorder(client_name=listener) as recorder:
        with open_midi_out(player_name) as player:
            port = wait_for_port(player, rf"^{re.escape(listener)}(-\d+)?:in$")
            assert port == recorder.port
            player.open_port(player.get_ports().index(port), "out")
            wait_for_connection(f"{player_name}:out", port)  # open_port returns before it is live
            player.send_message([0x90, 72, 64])
            player.send_message([0x80, 72, 0])
            received = recorder.wait_for_count(2)
    assert [message.data for message in received] == [b"\x90\x48\x40", b"\x80\x48\x00"]


def test_same_client_name_gets_distinct_jack_names(jack_server: JackServer) -> None:
    twin = unique_client_name("improv-twin")
    with open_midi_in(twin) as first, open_midi_in(twin) as second:
        ports = [open_virtual(first, "in"), open_virtual(second, "in")]
        with open_midi_out(unique_client_name("improv-test-probe")) as probe:
            pattern = rf"^{re.escape(twin.upper())}(-\d+)?:in$"  # matching ignores case
            listed = find_ports(probe, pattern)
            with pytest.raises(PortError, match="matches 2 ports"):
                wait_for_port(probe, re.escape(twin))

    assert ports[0] != ports[1]
    assert all(re.fullmatch(rf"{re.escape(twin)}(-\d+)?:in", port) for port in ports)
    assert sorted(listed) == sorted(ports)


def test_connect_errors_name_the_ports(jack_server: JackServer) -> None:
    with MidiRecorder() as recorder:
        with pytest.raises(PortError, match="cannot connect JACK port 'nobody:out'"):
            connect_ports("nobody:out", recorder.port)
        with pytest.raises(PortError, match="'nobody:out' is not connected to"):
            wait_for_connection("nobody:out", recorder.port, timeout_s=0.05)


def test_wait_for_port_names_what_it_saw(jack_server: JackServer) -> None:
    with open_midi_in(unique_client_name("improv-test-lonely")) as client:
        with pytest.raises(PortError, match="no JACK MIDI port matches 'nowhere'"):
            wait_for_port(client, "nowhere", timeout_s=0.05)


def test_subprocess_finds_server_through_env(jack_server: JackServer) -> None:
    assert os.environ["JACK_DEFAULT_SERVER"] == jack_server.name
    with MidiRecorder() as recorder:
        listing = subprocess.run(
            ["jack_lsp"], env=jack_server.env(), capture_output=True, text=True, check=True
        )
    assert recorder.port in listing.stdout.splitlines()


def test_client_without_server_fails_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "improv-no-such-server")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    with pytest.raises(JackServerError, match="improv-no-such-server") as failure:
        with open_midi_in(unique_client_name("improv-test-orphan")):
            pass
    assert "\n" not in str(failure.value)


def test_server_stops_cleanly(jack_server: JackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped servers leave no process, no registry slot and no /dev/shm files,
    even with a client still open. Killed servers would keep their registry
    slot; JACK has only 8.
    """
    names = []
    for _ in range(3):
        with contextlib.ExitStack() as clients:
            with JackServer(export=False) as server:
                names.append(server.name)
                assert jackd_pids(server.name) == [server.pid]
                assert registered_servers()[server.name] == server.pid
                monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
                straggler = unique_client_name("improv-test-straggler")
                client = clients.enter_context(open_midi_in(straggler))
                open_virtual(client, "in")
                monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
            assert not server.running

    assert not any(jackd_pids(name) for name in names)
    assert not set(names) & set(registered_servers())
    assert not [path for path in Path("/dev/shm").iterdir() if any(n in path.name for n in names)]
    assert os.environ["JACK_DEFAULT_SERVER"] == jack_server.name
    assert jack_server.name in registered_servers()  # the session server is untouched


def test_nested_server_exports_and_restores_env(jack_server: JackServer) -> None:
    with JackServer() as inner:
        assert os.environ["JACK_DEFAULT_SERVER"] == inner.name
        with MidiRecorder() as recorder, open_midi_out(unique_client_name("improv-test")) as out:
            connect_ports(open_virtual(out, "out"), recorder.port)
            out.send_message([0xF8])  # clock: the recorder keeps what rtmidi drops by default
            assert [m.data for m in recorder.wait_for_count(1)] == [b"\xf8"]
    assert os.environ["JACK_DEFAULT_SERVER"] == jack_server.name


def test_server_name_is_validated() -> None:
    with pytest.raises(ValueError, match="server name 'bad/name'"):
        JackServer(name="bad/name")
