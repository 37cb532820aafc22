"""MIDI ports for the live instrument: list them, open them, keep them connected.

python-rtmidi directly (mido is only used for files). Ports are virtual by
default (``improv:in``/``improv:out``); ``--in``/``--out`` open existing ports
by case-insensitive name fragment instead, and those are watched: ``check()``,
called about once a second off the real-time path (``PortWatcher`` does it),
notices a port that disappeared and reconnects when it returns.

Facts about python-rtmidi that shaped this module:

- Each ``MidiIn``/``MidiOut`` is its own backend client; under JACK the second
  one named ``improv`` becomes ``improv-01`` (so ``improv-01:out``). A
  client's own ports are never matched as targets, or ``--in improv`` would
  feed improv's output back into itself.
- ``open_port`` takes an index into a list that other programs change at any
  time, so the name at that index is checked after opening.
- ``close_port`` also cancels the input callback; reconnecting sets it again.
- A port given by name that disappears leaves rtmidi's port "open" and
  silently unconnected, and when the port returns nothing reconnects it: only
  listing the ports tells. Sending to it meanwhile neither fails nor arrives.
- Using an rtmidi object after ``delete()`` crashes the process, so every use
  and ``close`` hold the port's lock.
- After an unterminated sysex start (0xF0), rtmidi's input joins everything
  up to the next 0xF7 into one message; the engine's parser copes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol, Self, TypeAlias

import rtmidi

from improv.errors import PortError

log = logging.getLogger(__name__)

API_ENV = "IMPROV_MIDI_API"
DEFAULT_CLIENT = "improv"
API_IDS = {
    "alsa": rtmidi.API_LINUX_ALSA,
    "jack": rtmidi.API_UNIX_JACK,
    "coremidi": rtmidi.API_MACOSX_CORE,
    "winmm": rtmidi.API_WINDOWS_MM,
}
API_CHOICES = ("auto", *API_IDS)
ALSA_SEQ_DEVICE = "/dev/snd/seq"
_OPEN_ATTEMPTS = 3
_LEARN_NAME_TIMEOUT_S = 0.5

MidiCallback: TypeAlias = Callable[[list[int], float], None]
ApiSpec: TypeAlias = str | int | None
_Client: TypeAlias = rtmidi.MidiIn | rtmidi.MidiOut

# Ports and clients this process opened, so that matching never picks them.
_own_lock = threading.Lock()
_own_ports: set[str] = set()
_own_clients: Counter[str] = Counter()


# --- APIs ----------------------------------------------------------------------


def parse_api(name: str | None = None, platform: str | None = None) -> int:
    """The rtmidi API constant for `name` (None: $IMPROV_MIDI_API, else "auto").

    "auto" is the platform's usual API: ALSA on Linux, CoreMIDI on macOS, WinMM
    on Windows. Raises PortError for an unknown name or an API this rtmidi
    build lacks.
    """
    source = ""
    if name is None:
        name = os.environ.get(API_ENV, "").strip() or "auto"
        source = f" (from ${API_ENV})" if API_ENV in os.environ else ""
    key = name.strip().lower()
    if key == "auto":
        key = _platform_api(platform or sys.platform)
    if key not in API_IDS:
        raise PortError(f"unknown MIDI API {name!r}{source}; choose one of {', '.join(API_CHOICES)}")
    api = API_IDS[key]
    if api not in rtmidi.get_compiled_api():
        raise PortError(
            f"MIDI API {key!r} is not available in this python-rtmidi build; "
            f"available: {', '.join(available_apis()) or 'none'}"
        )
    return api


def _platform_api(platform: str) -> str:
    if platform.startswith("linux"):
        return "alsa"
    if platform == "darwin":
        return "coremidi"
    if platform in ("win32", "cygwin"):
        return "winmm"
    compiled = available_apis()
    if not compiled:
        raise PortError("this python-rtmidi build has no MIDI API; reinstall python-rtmidi")
    return compiled[0]


def available_apis() -> list[str]:
    """Names (as --api takes them) of the APIs compiled into rtmidi."""
    compiled = rtmidi.get_compiled_api()
    return [name for name, api in API_IDS.items() if api in compiled]


def api_name(api: int) -> str:
    """The --api name of an rtmidi API constant ("jack")."""
    for name, value in API_IDS.items():
        if value == api:
            return name
    return rtmidi.get_api_name(api)


def _resolve_api(api: ApiSpec) -> int:
    return api if isinstance(api, int) else parse_api(api)


def _open_client(kind: type[_Client], api: int, client_name: str) -> _Client:
    """An rtmidi client, or a PortError that says how to get one."""
    if api == rtmidi.API_LINUX_ALSA and sys.platform.startswith("linux"):
        if not os.path.exists(ALSA_SEQ_DEVICE):  # checked first: libasound would print noise
            raise PortError(_alsa_hint(f"{ALSA_SEQ_DEVICE} does not exist"))
    try:
        return kind(api, name=client_name)
    except rtmidi.SystemError as error:
        if api == rtmidi.API_LINUX_ALSA:
            raise PortError(_alsa_hint(str(error))) from error
        if api == rtmidi.API_UNIX_JACK:
            server = os.environ.get("JACK_DEFAULT_SERVER", "default")
            raise PortError(
                f"cannot reach the JACK server {server!r} ({error}); start jackd "
                "(or qjackctl), or choose another --api"
            ) from error
        raise PortError(f"cannot open a {api_name(api)} MIDI client: {error}") from error


def _alsa_hint(reason: str) -> str:
    jack = " or use --api jack with a running JACK server" if "jack" in available_apis() else ""
    return (
        f"cannot use the ALSA sequencer ({reason}); load the snd-seq kernel module "
        f"('sudo modprobe snd-seq'){jack}"
    )


@contextlib.contextmanager
def _temporary_client(kind: type[_Client], api: int, client_name: str) -> Iterator[_Client]:
    client = _open_client(kind, api, client_name)
    try:
        yield client
    finally:
        client.delete()  # `del` may leave the backend client (and its ports) alive


# --- listing and matching ------------------------------------------------------


def list_ports(api: ApiSpec = None, client_name: str = DEFAULT_CLIENT) -> tuple[list[str], list[str]]:
    """(inputs, outputs): the ports improv can listen to (--in) and play to (--out)."""
    api_id = _resolve_api(api)
    with _temporary_client(rtmidi.MidiIn, api_id, client_name) as source_lister:
        inputs = source_lister.get_ports()
    with _temporary_client(rtmidi.MidiOut, api_id, client_name) as sink_lister:
        outputs = sink_lister.get_ports()
    return inputs, outputs


def match_port(spec: str, ports: Sequence[str], kind: str = "input") -> str:
    """The one port in `ports` that `spec` names; raises PortError otherwise.

    An exact full name wins, then an exact name in another case, then a
    case-insensitive substring; it must be unique. `kind` ("input"/"output")
    only words the error.
    """
    found = _matches(spec, ports)
    if len(found) == 1:
        return found[0]
    listed = ", ".join(ports) or "none"
    if not found:
        raise PortError(
            f"no MIDI {kind} matches {spec!r}; {kind}s: {listed}; run 'improv ports' to list them"
        )
    raise PortError(
        f"MIDI {kind} {spec!r} matches {len(found)} ports ({', '.join(found)}); "
        "give more of the name"
    )


def _matches(spec: str, ports: Sequence[str]) -> list[str]:
    if spec in ports:
        return [spec]
    folded = spec.casefold()
    same = [port for port in ports if port.casefold() == folded]
    if same:
        return same
    return [port for port in ports if folded in port.casefold()]


def _is_own(port: str, client_name: str) -> bool:
    """True for ports of this process's clients (JACK may suffix names: "improv-01")."""
    client = port.split(":", 1)[0]
    with _own_lock:
        if port in _own_ports:
            return True
        names = {client_name, *_own_clients}
    return any(re.fullmatch(rf"{re.escape(name)}(-\d+)?", client) for name in names)


def _candidates(client: _Client, client_name: str) -> list[str]:
    return [port for port in client.get_ports() if not _is_own(port, client_name)]


# --- ports -----------------------------------------------------------------------


class _Port:
    """What MidiInput and MidiOutput share: open, watch, describe, close."""

    kind = "port"
    _rtmidi_kind: type[_Client]
    _local_name = ""  # the name of our own port on the client ("in"/"out")

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
        self._client: _Client | None = _open_client(self._rtmidi_kind, api, client_name)
        with _own_lock:
            _own_clients[client_name] += 1
        try:
            self._setup(self._client)
            if spec is None:
                self._open_virtual(self._client)
            else:
                ports = _candidates(self._client, client_name)
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
    def _setup(self, client: _Client) -> None:
        """Prepare a fresh client (before any port opens)."""

    def _before_open(self, client: _Client) -> None:
        """Runs before every open_port/open_virtual_port (close_port undoes it)."""

    def _open_virtual(self, client: _Client) -> None:
        if self.api == rtmidi.API_WINDOWS_MM:
            raise PortError(
                f"WinMM has no virtual ports; pass --{self._local_name} with a port name "
                "(a loopMIDI port works), see 'improv ports'"
            )
        probe_kind: type[_Client] = rtmidi.MidiOut if self._rtmidi_kind is rtmidi.MidiIn else rtmidi.MidiIn
        with _temporary_client(probe_kind, self.api, f"{self.client_name}-probe") as probe:
            before = set(probe.get_ports())
            self._before_open(client)
            try:
                client.open_virtual_port(self._local_name)
            except (rtmidi.RtMidiError, NotImplementedError) as error:
                raise PortError(f"cannot open virtual MIDI {self.kind} {self._local_name!r}: {error}") from error
            self._virtual_name = self._learn_name(probe, before)
        with _own_lock:
            _own_ports.add(self._virtual_name)
        self._connected = True

    def _learn_name(self, probe: _Client, before: set[str]) -> str:
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

    def _attach(self, client: _Client, target: str) -> bool:
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
                ports = _candidates(client, self.client_name)
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
                found = _matches(self.spec, ports)
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
        with _own_lock:
            _own_ports.discard(self._virtual_name)
            _own_clients[self.client_name] -= 1
            if _own_clients[self.client_name] <= 0:
                del _own_clients[self.client_name]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


class MidiInput(_Port):
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

    def _setup(self, client: _Client) -> None:
        assert isinstance(client, rtmidi.MidiIn)
        client.ignore_types(sysex=False, timing=False, active_sense=True)

    def _before_open(self, client: _Client) -> None:
        assert isinstance(client, rtmidi.MidiIn)
        client.set_callback(self._on_message)  # before opening, so nothing queues unseen

    def _on_message(self, event: tuple[list[int], float], data: object = None) -> None:
        time_s = time.monotonic()
        try:
            self._callback(event[0], time_s)
        except Exception as error:  # noqa: BLE001 - never let it into the backend thread
            self.callback_errors += 1
            self.last_callback_error = error


class MidiOutput(_Port):
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
    return MidiInput(spec, _resolve_api(api), callback, client_name)


def open_output(spec: str | None, api: ApiSpec, client_name: str = DEFAULT_CLIENT) -> MidiOutput:
    """A virtual output ``<client>:out`` (spec None), or the existing port `spec` names."""
    return MidiOutput(spec, _resolve_api(api), client_name)


# --- watching ----------------------------------------------------------------------


class Watchable(Protocol):
    def check(self) -> str | None: ...


class PortWatcher:
    """Calls ``check()`` on ports every `interval_s` from its own thread.

    Each status change ("input 'X' disconnected; waiting for it") goes to
    `on_change` (default: log it). A context manager; `stop` is idempotent.
    """

    def __init__(
        self,
        ports: Iterable[Watchable],
        on_change: Callable[[str], None] | None = None,
        interval_s: float = 1.0,
    ) -> None:
        self.ports = list(ports)
        self.on_change = on_change or (lambda message: log.warning("%s", message))
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> list[str]:
        """Check every port once; report and return the status changes."""
        changes = [change for port in self.ports if (change := port.check()) is not None]
        for change in changes:
            self.on_change(change)
        return changes

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception:  # keep watching: a dead watcher would never reconnect anything
                log.exception("checking MIDI ports failed")

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="improv-port-watcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
