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

import threading
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
from improv.midi.arrival import ArrivalClock
from improv.midi.listing import DEFAULT_CLIENT, list_ports, match_port
from improv.midi.port import Port
from improv.midi.status import ACTIVE_SENSING
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


POLL_S = 0.001  # how often the input's thread looks for messages the backend queued, while they come
IDLE_POLL_S = 0.004  # ... and after IDLE_S without any: a phrase's first note waits at most this (its time is exact)
IDLE_S = 2.0
QUEUE_SIZE = 8192  # messages the backend may queue meanwhile (a 10,000 msg/s flood fills 10 a poll)


class MidiInput(Port):
    """A MIDI input that hands each raw message to ``callback(data, time_s)``, on a thread of its own.

    The backend's thread (JACK's process thread, ALSA's input thread) only queues each message
    with its delta time; this input's thread collects them every millisecond (every 4 ms after two
    seconds of silence: an idle instrument costs ~3 % of a core). A Python callback
    on the backend's thread would have to wait there for the GIL: a real-time JACK server misses
    its cycle meanwhile (an xrun: a click in every client's audio), and each message behind it
    gets a late time. `time_s` is when the message arrived, on ``time.monotonic()``'s clock, from
    the backend's delta times (`arrival`), not when it was collected. The callback must convert,
    enqueue and return. Sysex and MIDI clock are delivered; active sensing is dropped (after its
    delta time is counted). A callback that raises is counted in `callback_errors` (its last
    exception in `last_callback_error`) and the input goes on.
    """

    kind = "input"
    _rtmidi_kind = rtmidi.MidiIn
    _local_name = "in"
    _client_options = {"queue_size_limit": QUEUE_SIZE}

    def __init__(
        self, spec: str | None, api: int, callback: MidiCallback, client_name: str = DEFAULT_CLIENT
    ) -> None:
        self._callback = callback
        self._arrivals = ArrivalClock()
        self.callback_errors = 0
        self.last_callback_error: Exception | None = None
        self._stop = threading.Event()
        super().__init__(spec, api, client_name)
        self._poller = threading.Thread(target=self._poll, name=f"{client_name}-midi-in", daemon=True)
        self._poller.start()

    def _setup(self, client: Client) -> None:
        assert isinstance(client, rtmidi.MidiIn)
        client.ignore_types(sysex=False, timing=False, active_sense=False)  # every delta counts: see `arrival`

    def _before_open(self, client: Client) -> None:
        self._arrivals.reset()  # the backend's deltas start again with the port

    def _collect(self) -> list[tuple[list[int], float]]:
        """What the backend queued since the last look, as (data, arrival time)."""
        out: list[tuple[list[int], float]] = []
        with self._lock:
            client = self._client
            if client is None:
                return out
            while (event := client.get_message()) is not None:
                time_s = self._arrivals.arrival(event[1], time.monotonic())
                if event[0][:1] != [ACTIVE_SENSING]:
                    out.append((event[0], time_s))
        return out

    def _poll(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            messages = self._collect()
            for data, time_s in messages:
                try:
                    self._callback(data, time_s)
                except Exception as error:  # noqa: BLE001 - one bad message must not stop the input
                    self.callback_errors += 1
                    self.last_callback_error = error
            if messages:
                last = messages[-1][1]
            else:  # time.sleep: cheaper than an Event's timed wait, a thousand times a second
                time.sleep(POLL_S if time.monotonic() - last < IDLE_S else IDLE_POLL_S)

    def close(self) -> None:
        self._stop.set()
        poller = getattr(self, "_poller", None)
        if poller is not None and poller is not threading.current_thread():
            poller.join(1.0)
        super().close()


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
