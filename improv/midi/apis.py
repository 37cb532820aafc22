"""The MIDI APIs python-rtmidi can use (ALSA, JACK, CoreMIDI, WinMM): choose one, open a client.

python-rtmidi is improv's one live MIDI backend (mido is only used for files);
the API is chosen once, by name or from $IMPROV_MIDI_API. What goes wrong
differs per API, so each failure says how to fix it there: load snd-seq for
ALSA, start jackd for JACK.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TypeAlias

import rtmidi

from improv.errors import PortError

API_ENV = "IMPROV_MIDI_API"
API_IDS = {
    "alsa": rtmidi.API_LINUX_ALSA,
    "jack": rtmidi.API_UNIX_JACK,
    "coremidi": rtmidi.API_MACOSX_CORE,
    "winmm": rtmidi.API_WINDOWS_MM,
}
API_CHOICES = ("auto", *API_IDS)
ALSA_SEQ_DEVICE = "/dev/snd/seq"

ApiSpec: TypeAlias = str | int | None
Client: TypeAlias = rtmidi.MidiIn | rtmidi.MidiOut


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


def resolve_api(api: ApiSpec) -> int:
    return api if isinstance(api, int) else parse_api(api)


def open_client(kind: type[Client], api: int, client_name: str, **options: int) -> Client:
    """An rtmidi client (`options`: more of its keyword arguments), or a PortError that says how to get one."""
    if api == rtmidi.API_LINUX_ALSA and sys.platform.startswith("linux"):
        if not os.path.exists(ALSA_SEQ_DEVICE):  # checked first: libasound would print noise
            raise PortError(_alsa_hint(f"{ALSA_SEQ_DEVICE} does not exist"))
    try:
        return kind(api, name=client_name, **options)
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
def temporary_client(kind: type[Client], api: int, client_name: str) -> Iterator[Client]:
    client = open_client(kind, api, client_name)
    try:
        yield client
    finally:
        client.delete()  # `del` may leave the backend client (and its ports) alive
