"""Which MIDI ports exist, which one a name fragment means, and which are improv's own.

A client's own ports are never matched as targets, or ``--in improv`` would
feed improv's output back into itself; under JACK a second client named
``improv`` becomes ``improv-01``, so those count as ours too.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Sequence

import rtmidi

from improv.errors import PortError
from improv.midi.apis import ApiSpec, Client, resolve_api, temporary_client

DEFAULT_CLIENT = "improv"

# Ports and clients this process opened, so that matching never picks them.
_own_lock = threading.Lock()
_own_ports: set[str] = set()
_own_clients: Counter[str] = Counter()


def list_ports(api: ApiSpec = None, client_name: str = DEFAULT_CLIENT) -> tuple[list[str], list[str]]:
    """(inputs, outputs): the ports improv can listen to (--in) and play to (--out)."""
    api_id = resolve_api(api)
    with temporary_client(rtmidi.MidiIn, api_id, client_name) as source_lister:
        inputs = source_lister.get_ports()
    with temporary_client(rtmidi.MidiOut, api_id, client_name) as sink_lister:
        outputs = sink_lister.get_ports()
    return inputs, outputs


def match_port(spec: str, ports: Sequence[str], kind: str = "input") -> str:
    """The one port in `ports` that `spec` names; raises PortError otherwise.

    An exact full name wins, then an exact name in another case, then a
    case-insensitive substring; it must be unique. `kind` ("input"/"output")
    only words the error.
    """
    found = matches(spec, ports)
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


def matches(spec: str, ports: Sequence[str]) -> list[str]:
    """The ports `spec` could mean, best kind of match only (see `match_port`)."""
    if spec in ports:
        return [spec]
    folded = spec.casefold()
    same = [port for port in ports if port.casefold() == folded]
    if same:
        return same
    return [port for port in ports if folded in port.casefold()]


def claim(client_name: str) -> None:
    """A client of this process opened: its ports are never targets."""
    with _own_lock:
        _own_clients[client_name] += 1


def claim_port(port: str) -> None:
    with _own_lock:
        _own_ports.add(port)


def release(client_name: str, port: str) -> None:
    """A client of this process (and its virtual port, if any) closed."""
    with _own_lock:
        _own_ports.discard(port)
        _own_clients[client_name] -= 1
        if _own_clients[client_name] <= 0:
            del _own_clients[client_name]


def is_own(port: str, client_name: str) -> bool:
    """True for ports of this process's clients (JACK may suffix names: "improv-01")."""
    client = port.split(":", 1)[0]
    with _own_lock:
        if port in _own_ports:
            return True
        names = {client_name, *_own_clients}
    return any(re.fullmatch(rf"{re.escape(name)}(-\d+)?", client) for name in names)


def candidates(client: Client, client_name: str) -> list[str]:
    """The ports `client` sees that are not this process's own."""
    return [port for port in client.get_ports() if not is_own(port, client_name)]
