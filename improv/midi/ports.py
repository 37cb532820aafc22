"""MIDI ports for the live instrument: an input that hands each message on, an output that never raises.

python-rtmidi directly (mido is only used for files). Ports are virtual by
default (``improv:in``/``improv:out``); ``--in``/``--out`` open existing ports
by case-insensitive name fragment instead, and those are watched and
reconnected (`improv.midi.port`). The API is chosen in `improv.midi.apis`,
names are listed and matched in `improv.midi.listing`, and `PortWatcher`
(`improv.midi.watcher`) checks them; their names are importable from here too.

After an unterminated sysex start (0xF0), rtmidi's input joins everything up
to the next 0xF7 into one message; the engine's parser copes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeAlias

import rtmidi

from improv.midi.apis import (
    ALSA_SEQ_DEVICE,
    API_CHOICES,
    API_ENV,
    API_IDS,
    ApiSpec,
    Client,
    api_name,
    available_apis,
    parse_api,
    resolve_api,
)
from improv.midi.listing import DEFAULT_CLIENT, list_ports, match_port
from improv.midi.port import Port
from improv.midi.watcher import PortWatcher, Watchable

__all__ = [
    "ALSA_SEQ_DEVICE",
    "API_CHOICES",
    "API_ENV",
    "API_IDS",
    "DEFAULT_CLIENT",
    "ApiSpec",
    "MidiCallback",
    "MidiInput",
    "MidiOutput",
    "PortWatcher",
    "Watchable",
    "api_name",
    "available_apis",
    "list_ports",
    "match_port",
    "open_input",
    "open_output",
    "parse_api",
]

MidiCallback: TypeAlias = Callable[[list[int], float], None]


class MidiInput(Port):
    """A MIDI input that hands each raw message to ``callback(data, time_s)``.

    `time_s` is ``time.monotonic()`` taken as the message arrives. The callback
    runs on the backend's real-time thread (JACK's process thread): it must
    convert, enqueue and return. Sysex and MIDI clock are delivered; active
    sensing is dropped. A callback that raises is counted in
    `callback_errors` (its last exception in `last_callback_error`), not
    propagated into the backend.
    """

    kind = "input"
    _rtmidi_kind = rtmidi.MidiIn
    _local_name = "in"

    def __init__(
        self, spec: str | None, api: int, callback: MidiCallback, client_name: str = DEFAULT_CLIENT
    ) -> None:
        self._callback = callback
        self.callback_errors = 0
        self.last_callback_error: Exception | None = None
        super().__init__(spec, api, client_name)

    def _setup(self, client: Client) -> None:
        assert isinstance(client, rtmidi.MidiIn)
        client.ignore_types(sysex=False, timing=False, active_sense=True)

    def _before_open(self, client: Client) -> None:
        assert isinstance(client, rtmidi.MidiIn)
        client.set_callback(self._on_message)  # before opening, so nothing queues unseen

    def _on_message(self, event: tuple[list[int], float], data: object = None) -> None:
        time_s = time.monotonic()
        try:
            self._callback(event[0], time_s)
        except Exception as error:  # noqa: BLE001 - never let it into the backend thread
            self.callback_errors += 1
            self.last_callback_error = error


class MidiOutput(Port):
    """A MIDI output whose `send` is thread-safe and never raises for a lost port.

    Messages that cannot be delivered (port closed, disconnected, or refused
    by the backend) are counted in `dropped`; the engine keeps running.
    """

    kind = "output"
    _rtmidi_kind = rtmidi.MidiOut
    _local_name = "out"

    def __init__(self, spec: str | None, api: int, client_name: str = DEFAULT_CLIENT) -> None:
        self.dropped = 0
        super().__init__(spec, api, client_name)

    def send(self, data: Sequence[int]) -> bool:
        """Send one raw message; True if the port took it.

        Malformed data (empty, or longer than 3 bytes without 0xF0) raises
        ValueError: that is a bug in the caller, not a lost port.
        """
        with self._lock:
            client = self._client
            if client is None or not self._connected:
                self.dropped += 1
                return False
            try:
                client.send_message(data)
            except ValueError:
                raise
            except (rtmidi.RtMidiError, OSError):
                self.dropped += 1
                return False
            return True


def open_input(
    spec: str | None, api: ApiSpec, callback: MidiCallback, client_name: str = DEFAULT_CLIENT
) -> MidiInput:
    """A virtual input ``<client>:in`` (spec None), or the existing port `spec` names."""
    return MidiInput(spec, resolve_api(api), callback, client_name)


def open_output(spec: str | None, api: ApiSpec, client_name: str = DEFAULT_CLIENT) -> MidiOutput:
    """A virtual output ``<client>:out`` (spec None), or the existing port `spec` names."""
    return MidiOutput(spec, resolve_api(api), client_name)
