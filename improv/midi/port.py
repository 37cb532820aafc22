"""One MIDI port of improv's: opened virtual or by name, watched, reconnected, closed.

`Port` holds what an input and an output share; `improv.midi.ports` has the two.
A port given by name is watched: ``check()``, called about once a second off
the real-time path (``PortWatcher`` does it), notices a port that disappeared
and reconnects when it returns.

Facts about python-rtmidi that shaped this module:

- Each ``MidiIn``/``MidiOut`` is its own backend client; under JACK the second
  one named ``improv`` becomes ``improv-01`` (so ``improv-01:out``).
- ``open_port`` takes an index into a list that other programs change at any
  time, so the name at that index is checked after opening.
- A port given by name that disappears leaves rtmidi's port "open" and
  silently unconnected, and when the port returns nothing reconnects it: only
  listing the ports tells. Sending to it meanwhile neither fails nor arrives.
- Using an rtmidi object after ``delete()`` crashes the process, so every use
  and ``close`` hold the port's lock.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from typing import Self

import rtmidi

from improv.errors import PortError
from improv.midi.apis import Client, open_client, temporary_client
from improv.midi.listing import candidates, claim, claim_port, match_port, matches, release

log = logging.getLogger(__name__)

_OPEN_ATTEMPTS = 3
_LEARN_NAME_TIMEOUT_S = 0.5


class Port:
    """What MidiInput and MidiOutput share: open, watch, describe, close."""

    kind = "port"
    _rtmidi_kind: type[Client]
    _local_name = ""  # the name of our own port on the client ("in"/"out")
    _client_options: dict[str, int] = {}  # more keyword arguments for the rtmidi client

    def __init__(self, spec: str | None, api: int, client_name: str) -> None:
        if spec is not None and not spec.strip():
            raise PortError(f"an empty MIDI {self.kind} name was given; run 'improv ports' to list them")
        self.spec = spec
        self.api = api
        self.client_name = client_name
        self._lock = threading.RLock()
        self._target: str | None = None  # the full name we are (or were last) attached to
        self._connected = False
        self._virtual_name = ""
        self._client: Client | None = open_client(self._rtmidi_kind, api, client_name, **self._client_options)
        claim(client_name)
        try:
            self._setup(self._client)
            if spec is None:
                self._open_virtual(self._client)
            else:
                ports = candidates(self._client, client_name)
                target = match_port(spec, ports, self.kind)
                if not self._attach(self._client, target):
                    raise PortError(
                        f"MIDI {self.kind} {target!r} disappeared while it was being opened; "
                        "check the device and try again"
                    )
        except BaseException:
            self.close()
            raise

    # Subclasses hook in here.
    def _setup(self, client: Client) -> None:
        """Prepare a fresh client (before any port opens)."""

    def _before_open(self, client: Client) -> None:
        """Runs before every open_port/open_virtual_port (close_port undoes it)."""

    def _open_virtual(self, client: Client) -> None:
        if self.api == rtmidi.API_WINDOWS_MM:
            raise PortError(
                f"WinMM has no virtual ports; pass --{self._local_name} with a port name "
                "(a loopMIDI port works), see 'improv ports'"
            )
        probe_kind: type[Client] = rtmidi.MidiOut if self._rtmidi_kind is rtmidi.MidiIn else rtmidi.MidiIn
        with temporary_client(probe_kind, self.api, f"{self.client_name}-probe") as probe:
            before = set(probe.get_ports())
            self._before_open(client)
            try:
                client.open_virtual_port(self._local_name)
            except (rtmidi.RtMidiError, NotImplementedError) as error:
                raise PortError(f"cannot open virtual MIDI {self.kind} {self._local_name!r}: {error}") from error
            self._virtual_name = self._learn_name(probe, before)
        claim_port(self._virtual_name)
        self._connected = True

    def _learn_name(self, probe: Client, before: set[str]) -> str:
        """The full name others see for our virtual port: new in the probe's list."""
        # "client:in" (JACK), "client:in 128:0" (ALSA), "in" (CoreMIDI)
        ours = re.compile(rf"(^|:){re.escape(self._local_name)}( \d+:\d+)?$")
        deadline = time.monotonic() + _LEARN_NAME_TIMEOUT_S
        while True:
            new = [port for port in probe.get_ports() if port not in before and ours.search(port)]
            if len(new) == 1:
                return new[0]
            if time.monotonic() > deadline:
                return f"{self.client_name}:{self._local_name}"  # best guess, for display only
            time.sleep(0.005)

    def _attach(self, client: Client, target: str) -> bool:
        """Open `target` by index; True once the index was still `target` after opening."""
        for _ in range(_OPEN_ATTEMPTS):
            ports = client.get_ports()
            if target not in ports:
                return False
            index = ports.index(target)
            self._before_open(client)
            try:
                client.open_port(index, self._local_name)
            except rtmidi.RtMidiError as error:
                client.close_port()
                raise PortError(f"cannot open MIDI {self.kind} {target!r}: {error}") from error
            with contextlib.suppress(rtmidi.RtMidiError):
                if client.get_port_name(index) == target:
                    self._target = target
                    self._connected = True
                    return True
            client.close_port()  # the list changed under us: try again
        return False

    @property
    def virtual(self) -> bool:
        return self.spec is None

    @property
    def connected(self) -> bool:
        """True while the port is open and (unless virtual) attached to its target."""
        return self._client is not None and self._connected

    @property
    def port_name(self) -> str:
        """The full name of our virtual port, or of the port we attach to (or wait for)."""
        if self.virtual:
            return self._virtual_name
        return self._target or self.spec or ""

    @property
    def description(self) -> str:
        """One phrase for the UI: "improv:out (virtual)", "KeyStep Pro:out connected"."""
        if self._client is None:
            return f"{self.port_name} (closed)"
        if self.virtual:
            return f"{self.port_name} (virtual)"
        if self._connected:
            return f"{self._target} connected"
        return f"waiting for {self.spec!r}"

    def check(self) -> str | None:
        """Notice a vanished or returned port; a status change to report, else None.

        Call about once a second from a non-real-time thread. Virtual and
        closed ports have nothing to watch.
        """
        if self.virtual:
            return None
        with self._lock:
            client = self._client
            if client is None:
                return None
            try:
                ports = candidates(client, self.client_name)
            except rtmidi.RtMidiError as error:
                log.warning("cannot list MIDI %ss: %s", self.kind, error)
                return None
            if self._connected:
                if self._target in ports:
                    return None
                self._connected = False
                client.close_port()
                return f"{self.kind} {self._target!r} disconnected; waiting for it"
            target = self._target if self._target in ports else None
            if target is None:
                assert self.spec is not None
                found = matches(self.spec, ports)
                if len(found) != 1:
                    return None
                target = found[0]
            try:
                attached = self._attach(client, target)
            except PortError as error:
                log.warning("%s", error)
                return None
            return f"{self.kind} {target!r} reconnected" if attached else None

    def close(self) -> None:
        """Close the port and its client; safe to call again."""
        with self._lock:
            client, self._client = self._client, None
            self._connected = False
            if client is None:
                return
            client.close_port()
            client.delete()
        release(self.client_name, self._virtual_name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"
