"""A private JACK server for MIDI tests and benchmarks, plus small rtmidi helpers.

These machines have no ALSA sequencer, so real MIDI goes through a JACK server
with the dummy driver, started under a unique name so that parallel runs never
share one. Clients find it through ``JACK_DEFAULT_SERVER``. Only tests and
benchmarks import this module; the live instrument never does.

Facts about JACK and python-rtmidi that shaped this module:

- ``del`` does not close an rtmidi JACK client (the C++ object outlives the
  Python one); its ports stay registered. Call ``.delete()``, as
  ``open_midi_in``/``open_midi_out``/``MidiRecorder`` do.
- Two clients opened with one name get distinct JACK names (``x``, ``x-01``),
  so ports are matched by pattern, or learnt by ``open_virtual``.
- JACK client names must also be unique across *servers*: while a client
  opens, libjack binds /dev/shm/jack_<client>_<uid>_0, with no server name in
  it, so two processes opening same-named clients at once (on any servers)
  break each other's handshake. Hence ``unique_client_name``, and ports are
  connected in-process through libjack, not with ``jack_connect`` (a fixed
  client name that failed ~20% of calls with three test runs in parallel).
- JACK's registry in /dev/shm holds at most 8 servers. A server that is
  killed rather than stopped leaves its entry behind; after 8 of those jackd
  fails with "Too many servers already active". Servers here stop with
  SIGTERM, and a registry that lists servers while no jackd runs is removed.
- libjack maps that registry once per process. Deleting it after a process
  has opened a JACK client breaks that process's clients of later servers
  ("Cannot open shm segment"), so a registry without stale entries is kept.
- python-rtmidi runs an input callback on JACK's process thread, which must
  take the GIL (a busy Python thread delays it), and ``close_port`` frees the
  callback while that thread may still be about to call it. MidiRecorder
  polls ``get_message`` from its own thread instead.
- RtMidi's MidiOut destructor frees its ring buffer before it closes the
  JACK client; a process callback still running then crashes. Clients here
  close the port and pause before ``delete()``.
- ``jack_connect`` returns before the process cycle sees the connection;
  ``connect_ports`` waits until it does and two cycles have run.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import functools
import itertools
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple, TypeAlias

import rtmidi

from improv.errors import ImprovError, PortError

log = logging.getLogger(__name__)

JACK_TOOLS = ("jackd", "jack_lsp")
SHM_DIR = Path("/dev/shm")
REGISTRY_PATH = SHM_DIR / "jack-shm-registry"
LOCK_PATH = Path(tempfile.gettempdir()) / "improv-jackd.lock"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
_PR_SET_PDEATHSIG = 1
_REGISTRY_HEADER_BYTES = 24
_REGISTRY_SLOT_BYTES = 264
_JACK_NO_START_SERVER = 0x01  # jack_options_t
_JACK_SERVER_NAME = 0x04
_client_numbers = itertools.count(1)

MidiClient: TypeAlias = rtmidi.MidiIn | rtmidi.MidiOut


class JackServerError(ImprovError, RuntimeError):
    """A JACK server that cannot be started, reached or used."""


def missing_jack_tools() -> list[str]:
    """The JACK command-line tools this module needs that are not on PATH."""
    return [tool for tool in JACK_TOOLS if shutil.which(tool) is None]


def jack_available() -> bool:
    """True if jackd and its tools are installed and rtmidi has the JACK API."""
    return not missing_jack_tools() and rtmidi.API_UNIX_JACK in rtmidi.get_compiled_api()


def jackd_pids(server_name: str | None = None) -> list[int]:
    """Live (non-zombie) jackd processes, optionally only the one serving `server_name`."""
    pids = []
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            if (proc_dir / "comm").read_text().strip() != "jackd":
                continue
            state = (proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[0]
            argv = (proc_dir / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if state == "Z":
            continue
        if server_name is None or _server_name_of(argv) == server_name:
            pids.append(int(proc_dir.name))
    return sorted(pids)


def _server_name_of(argv: list[str]) -> str | None:
    for flag, value in zip(argv, argv[1:]):
        if flag in ("-n", "--name"):
            return value
    for arg in argv:
        if arg.startswith("--name="):
            return arg.removeprefix("--name=")
    return None


def remove_stale_shm() -> list[Path]:
    """Delete JACK's /dev/shm registry and segments if they hold dead servers.

    A registry that lists servers while no jackd runs is stale (left by
    killed servers) and, once it lists 8, stops every new jackd. A registry
    with no servers is left alone: a process that has used libjack keeps the
    registry mapped, and deleting it would break that process's clients of
    the next server. Returns what was removed; nothing while any jackd lives.
    """
    if jackd_pids():
        return []
    try:
        stale = bool(registered_servers())
    except JackServerError:
        stale = True  # unreadable: start afresh
    if not stale:
        return []
    removed = []
    for path in sorted(SHM_DIR.glob("jack*")):
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        except OSError as error:  # another user's file: not ours to remove
            log.warning("cannot remove stale JACK file %s: %s", path, error)
            continue
        removed.append(path)
    if removed:
        log.info("removed stale JACK entries: %s", ", ".join(p.name for p in removed))
    return removed


def registered_servers() -> dict[str, int]:
    """Server name -> pid for each entry in JACK's /dev/shm registry (empty if none).

    The registry is jack2's jack_shm_header_t: a 24-byte header, then 8 slots
    of {int32 pid; char name[257]} padded to 264 bytes, name "jack-UID:SERVER:".
    JACK reclaims a dead server's slot only when a server of the same name
    starts, so entries of killed servers pile up until the registry is full.
    """
    try:
        raw = REGISTRY_PATH.read_bytes()
    except FileNotFoundError:
        return {}
    if raw[:4] != b"KCAJ" or len(raw) < _REGISTRY_HEADER_BYTES + 8 * _REGISTRY_SLOT_BYTES:
        raise JackServerError(f"{REGISTRY_PATH} is not a JACK registry this module can read")
    servers = {}
    for slot in range(8):
        start = _REGISTRY_HEADER_BYTES + slot * _REGISTRY_SLOT_BYTES
        pid = int.from_bytes(raw[start : start + 4], "little", signed=True)
        field = raw[start + 4 : start + _REGISTRY_SLOT_BYTES]
        name = field.split(b"\0", 1)[0].decode(errors="replace")
        if pid:
            parts = name.split(":")
            servers[parts[1] if len(parts) > 1 else name] = pid
    return servers


@contextlib.contextmanager
def _startup_lock() -> Iterator[None]:
    """Serialise "check for jackd, clean /dev/shm, start jackd" across processes."""
    fd = os.open(LOCK_PATH, os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _die_with_parent() -> None:
    """Runs in the forked child: jackd gets SIGTERM if the forking thread dies.

    Keeps a crashed or hard-killed test run from leaving orphan servers.
    """
    _libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


_libc = ctypes.CDLL(None, use_errno=True)  # resolved before fork, as preexec_fn needs


class JackServer:
    """A jackd with the dummy driver under a unique name; a context manager.

    ``with JackServer() as server:`` starts it, waits until clients can connect,
    and (if `export`) sets ``JACK_DEFAULT_SERVER`` in this process until it
    stops. Subprocesses get ``server.env()``. Nest servers LIFO only: stop
    restores the variable to what it was at start. jackd gets SIGTERM when the
    thread that started it exits, so start it from a thread that outlives it.

    `sync` runs jackd with --sync: each cycle waits for every client, so a
    client the OS runs late delays the clock instead of missing a cycle and
    the MIDI in it (async lost 3 messages in 900 under 3x CPU overload; sync
    none). Benchmarks that want free-running time can pass sync=False.

    `realtime` runs jackd with --realtime, as on a musician's machine: its cycles
    are scheduled first (where the system does not allow that, jackd says so
    and runs on without). A non-realtime dummy server under host load runs whole
    cycles late, and a grid test measured the host, not improv: with two busy
    processes beside it, the lost-pulse grid test's answers were 56 ms off the
    grid (p99); with --realtime, 0.95 ms. It is not the default: in one CI run
    with every test server real-time, two other JACK tests failed (the
    slow-callback arrival-time test and the knob test; both pass here with it,
    and in CI without it). Until that is understood, only the grid tests use it.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        sample_rate: int = 48000,
        period_frames: int = 128,
        export: bool = True,
        sync: bool = True,
        realtime: bool = False,
        start_timeout_s: float = 5.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self.name = name if name is not None else f"improv-{os.getpid()}-{secrets.token_hex(3)}"
        if not _NAME_RE.fullmatch(self.name):
            raise ValueError(
                f"server name {self.name!r} must be letters, digits, '.' and '-' "
                "(it becomes part of /dev/shm file names)"
            )
        if sample_rate <= 0 or period_frames <= 0:
            raise ValueError(
                f"sample_rate ({sample_rate}) and period_frames ({period_frames}) must be positive"
            )
        self.sample_rate = sample_rate
        self.period_frames = period_frames
        self.export = export
        self.sync = sync
        self.realtime = realtime
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.xrun_count = 0  # XRuns jackd reported; the dummy driver has them under load
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._output: deque[str] = deque(maxlen=200)
        self._saved_env: dict[str, str | None] = {}

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"JackServer(name={self.name!r}, {state})"

    @property
    def command(self) -> list[str]:
        return [
            "jackd", "-n", self.name, "--realtime" if self.realtime else "--no-realtime",
            *(["--sync"] if self.sync else []),
            "-d", "dummy", "-r", str(self.sample_rate), "-p", str(self.period_frames),
        ]  # fmt: skip

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment for subprocesses that should use this server."""
        env = dict(os.environ if base is None else base)
        env["JACK_DEFAULT_SERVER"] = self.name
        env["JACK_NO_START_SERVER"] = "1"  # never let a client spawn a default server
        return env

    def start(self) -> None:
        """Start jackd and return once a client can connect; raise JackServerError if not."""
        if self._process is not None:
            raise JackServerError(f"JACK server {self.name!r} is already started")
        missing = missing_jack_tools()
        if missing:
            raise JackServerError(
                f"JACK tools not found: {', '.join(missing)}; install Debian's jackd2 package"
            )
        with _startup_lock():
            if jackd_pids(self.name):
                raise JackServerError(
                    f"a jackd named {self.name!r} is already running; pick another name"
                )
            remove_stale_shm()
            self._output.clear()
            self.xrun_count = 0
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.env(),
                preexec_fn=_die_with_parent,
            )
            self._reader = threading.Thread(
                target=self._read_output, name=f"jackd-{self.name}-output", daemon=True
            )
            self._reader.start()
            try:
                self._wait_until_ready()
            except BaseException:
                self._shut_down()
                raise
        if self.export:
            for key, value in self.env(base={}).items():
                self._saved_env[key] = os.environ.get(key)
                os.environ[key] = value

    def _read_output(self) -> None:
        """Drain jackd's output so it never blocks on a full pipe; keep the tail.

        jackd prints a line per XRun, which under load is hundreds a second.
        """
        assert self._process is not None and self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.decode(errors="replace").rstrip()
            if "XRun" in line:
                self.xrun_count += 1
            elif line:
                self._output.append(line)

    def _wait_until_ready(self) -> None:
        """Poll with jack_lsp: it succeeds only once the server accepts clients."""
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            returncode = self._process.poll()
            if returncode is not None:
                if self._reader is not None:
                    self._reader.join(1.0)
                raise JackServerError(
                    f"jackd -n {self.name} exited with code {returncode} before it was ready: "
                    f"{self._output_summary()}{_hint(self.output())}"
                )
            probe = subprocess.run(
                ["jack_lsp"], env=self.env(), capture_output=True, timeout=self.start_timeout_s
            )
            if probe.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise JackServerError(
                    f"jackd -n {self.name} was not ready after {self.start_timeout_s} s: "
                    f"{self._output_summary()}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL only after `stop_timeout_s`); remove this server's files."""
        if self._process is None:
            return
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        if self._shut_down():
            with _startup_lock():
                remove_stale_shm()

    def _shut_down(self) -> bool:
        """End the process and its reader; True if it had to be killed."""
        assert self._process is not None
        killed = self._terminate(self._process)
        if self._reader is not None:
            self._reader.join(1.0)  # EOF follows the exit at once
            self._reader = None
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._process = None
        self._remove_own_shm()
        return killed

    def _terminate(self, process: subprocess.Popen[bytes]) -> bool:
        """Stop `process`; True if it had to be killed (its registry entry then leaks)."""
        if process.poll() is not None:
            return False
        process.terminate()
        try:
            process.wait(self.stop_timeout_s)
            return False
        except subprocess.TimeoutExpired:
            log.warning(
                "jackd -n %s ignored SIGTERM for %s s; killing it (its /dev/shm registry "
                "entry stays until no jackd runs)",
                self.name,
                self.stop_timeout_s,
            )
            process.kill()
            process.wait()
            return True

    def _remove_own_shm(self) -> None:
        """Remove semaphores and sockets left by clients that were not closed."""
        patterns = (f"jack_sem.*_{self.name}_*", f"jack_{self.name}_*")
        for pattern in patterns:
            for path in SHM_DIR.glob(pattern):
                with contextlib.suppress(OSError):
                    path.unlink()

    def output(self) -> str:
        """The last 200 lines jackd printed (stdout and stderr), XRun lines left out."""
        return "\n".join(self._output)

    def _output_summary(self, lines: int = 3) -> str:
        banner = ("jackdmp ", "Copyright ", "jackdmp comes", "This is free", "under certain")
        text = [line.strip() for line in self._output if not line.startswith(banner)]
        return " | ".join(text[-lines:]) or "(no output)"

    def __enter__(self) -> JackServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _hint(output: str) -> str:
    if "Too many servers already active" in output:
        listed = "unreadable"
        with contextlib.suppress(JackServerError):
            listed = ", ".join(f"{name} (pid {pid})" for name, pid in registered_servers().items())
        return (
            f"; JACK's registry is full ({listed}): stop other servers ('pgrep -a jackd'), "
            f"or if none run remove {REGISTRY_PATH}"
        )
    return ""


def unique_client_name(prefix: str) -> str:
    """`prefix` made unique on this machine (pid and a counter), for JACK clients.

    Same-named clients opened at once by two processes, even on different
    servers, break each other (see the module docstring).
    """
    return f"{prefix}-{os.getpid()}-{next(_client_numbers)}"


@contextlib.contextmanager
def _jack_client(kind: type[MidiClient], client_name: str) -> Iterator[MidiClient]:
    try:
        client = kind(rtmidi.API_UNIX_JACK, name=client_name)
    except rtmidi.SystemError as error:
        server = os.environ.get("JACK_DEFAULT_SERVER", "default")
        raise JackServerError(
            f"cannot open JACK MIDI client {client_name!r} on server {server!r} ({error}); "
            "start one with support.jack_server.JackServer"
        ) from error
    try:
        yield client
    finally:
        client.close_port()
        if isinstance(client, rtmidi.MidiOut):
            # RtMidi's MidiOut destructor frees its ring buffer before closing
            # the client; a process callback still running then segfaults (seen
            # twice in 3000 closes under CPU overload). After close_port the
            # callback returns early; the pause lets a running one finish.
            time.sleep(0.05)
        client.delete()  # `del` would leave the JACK client and its ports alive


@contextlib.contextmanager
def open_midi_in(client_name: str) -> Iterator[rtmidi.MidiIn]:
    """An rtmidi JACK input client, deleted (so its ports vanish) on exit."""
    with _jack_client(rtmidi.MidiIn, client_name) as client:
        assert isinstance(client, rtmidi.MidiIn)
        yield client


@contextlib.contextmanager
def open_midi_out(client_name: str) -> Iterator[rtmidi.MidiOut]:
    """An rtmidi JACK output client, deleted (so its ports vanish) on exit."""
    with _jack_client(rtmidi.MidiOut, client_name) as client:
        assert isinstance(client, rtmidi.MidiOut)
        yield client


def find_ports(client: MidiClient, pattern: str) -> list[str]:
    """Ports `client` could open whose name matches regex `pattern` (re.search, any case).

    A MidiIn lists JACK MIDI outputs (sources), a MidiOut lists inputs (sinks);
    names are "client:port". Use re.escape for literal names.
    """
    regex = re.compile(pattern, re.IGNORECASE)
    return [name for name in client.get_ports() if regex.search(name)]


def wait_for_port(client: MidiClient, pattern: str, timeout_s: float = 2.0) -> str:
    """The one port matching `pattern`, waiting for it to appear (other processes
    register ports asynchronously). Raises PortError on timeout or ambiguity."""
    deadline = time.monotonic() + timeout_s
    while True:
        matches = find_ports(client, pattern)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise PortError(
                f"JACK port pattern {pattern!r} matches {len(matches)} ports "
                f"({', '.join(matches)}); make it more specific"
            )
        if time.monotonic() > deadline:
            seen = ", ".join(client.get_ports()) or "none"
            raise PortError(
                f"no JACK MIDI port matches {pattern!r} after {timeout_s} s; ports seen: {seen}"
            )
        time.sleep(0.01)


def open_virtual(client: MidiClient, port_name: str) -> str:
    """Open a virtual port on `client` and return its full JACK name ("client-01:in").

    JACK may rename the client, so the name is learnt by listing the ports of
    the opposite direction before and after opening.
    """
    is_input = isinstance(client, rtmidi.MidiIn)
    probe_kind: type[MidiClient] = rtmidi.MidiOut if is_input else rtmidi.MidiIn
    with _jack_client(probe_kind, unique_client_name("improv-probe")) as probe:
        before = set(probe.get_ports())
        client.open_virtual_port(port_name)
        suffix = re.compile(f":{re.escape(port_name)}$")
        deadline = time.monotonic() + 2.0
        while True:
            new: list[str] = [
                name for name in probe.get_ports() if name not in before and suffix.search(name)
            ]
            if len(new) == 1:
                return new[0]
            if time.monotonic() > deadline:
                raise PortError(
                    f"virtual JACK port {port_name!r} did not appear as exactly one new port "
                    f"(new ports: {', '.join(new) or 'none'})"
                )
            time.sleep(0.01)


@functools.cache
def _libjack() -> ctypes.CDLL:
    """The libjack that rtmidi loaded (its wheel bundles one), else the system's."""
    with open("/proc/self/maps") as maps:
        paths = [line.split(maxsplit=5)[-1].strip() for line in maps if "libjack" in line]
    path = next((p for p in paths if p.startswith("/")), None) or ctypes.util.find_library("jack")
    if path is None:
        raise JackServerError("libjack not found; install Debian's libjack-jackd2-0")
    lib = ctypes.CDLL(path)
    lib.jack_client_open.argtypes = [
        ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.c_char_p
    ]
    lib.jack_client_open.restype = ctypes.c_void_p
    lib.jack_connect.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.jack_connect.restype = ctypes.c_int
    lib.jack_client_close.argtypes = [ctypes.c_void_p]
    lib.jack_client_close.restype = ctypes.c_int
    lib.jack_port_by_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.jack_port_by_name.restype = ctypes.c_void_p
    lib.jack_port_connected_to.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.jack_port_connected_to.restype = ctypes.c_int
    lib.jack_last_frame_time.argtypes = [ctypes.c_void_p]
    lib.jack_last_frame_time.restype = ctypes.c_uint32
    lib.jack_get_buffer_size.argtypes = [ctypes.c_void_p]
    lib.jack_get_buffer_size.restype = ctypes.c_uint32
    return lib


@contextlib.contextmanager
def _control_client(server_name: str | None) -> Iterator[tuple[ctypes.CDLL, int]]:
    """A short-lived plain libjack client with a unique name, for graph work."""
    lib = _libjack()
    status = ctypes.c_int(0)
    client = lib.jack_client_open(
        unique_client_name("improv-control").encode(),
        _JACK_NO_START_SERVER | (_JACK_SERVER_NAME if server_name else 0),
        ctypes.byref(status),
        server_name.encode() if server_name else None,
    )
    if not client:
        server = server_name or os.environ.get("JACK_DEFAULT_SERVER", "default")
        raise JackServerError(
            f"cannot open a JACK client on server {server!r} "
            f"(status 0x{status.value:x}); is it running?"
        )
    try:
        yield lib, client
    finally:
        lib.jack_client_close(client)


def connect_ports(source: str, destination: str, server_name: str | None = None) -> None:
    """Connect two JACK ports by full name ("client:port"), whoever owns them.

    A plain libjack client does it in-process: exact names avoid rtmidi's
    open-by-index race, and jack_connect's fixed client name collides across
    parallel runs. Returns once MIDI sent will arrive (see wait_for_connection).
    `server_name` defaults to $JACK_DEFAULT_SERVER. Already connected is fine.
    """
    with _control_client(server_name) as (lib, client):
        result = lib.jack_connect(client, source.encode(), destination.encode())
        if result not in (0, errno.EEXIST):
            raise PortError(
                f"cannot connect JACK port {source!r} to {destination!r} (error {result}); "
                "check both exist (find_ports) and go output -> input"
            )
        _wait_until_live(lib, client, source, destination, timeout_s=5.0)


def wait_for_connection(
    source: str, destination: str, server_name: str | None = None, timeout_s: float = 5.0
) -> None:
    """Wait until MIDI from `source` reaches `destination`, e.g. after rtmidi's
    open_port(index), which returns before the connection is live."""
    with _control_client(server_name) as (lib, client):
        _wait_until_live(lib, client, source, destination, timeout_s)


def _wait_until_live(
    lib: ctypes.CDLL, client: int, source: str, destination: str, timeout_s: float
) -> None:
    """Return once the connection is in the graph and two cycles have run.

    A connection reaches the process cycle a little after jack_connect returns,
    and a client activated just before may not run its process yet: MIDI sent
    in that gap was lost 1 time in 10 under CPU load; after waiting, none in 3000.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        port = lib.jack_port_by_name(client, source.encode())
        if port and lib.jack_port_connected_to(port, destination.encode()):
            break
        if time.monotonic() > deadline:
            raise PortError(
                f"JACK port {source!r} is not connected to {destination!r} after {timeout_s} s"
            )
        time.sleep(0.001)
    start = lib.jack_last_frame_time(client)
    frames = 2 * lib.jack_get_buffer_size(client)
    while (lib.jack_last_frame_time(client) - start) % 2**32 < frames:
        if time.monotonic() > deadline:
            break  # a stalled clock: the connection exists, let the caller's timeouts judge
        time.sleep(0.001)


class Received(NamedTuple):
    """One message as the recorder saw it."""

    time_s: float  # time.monotonic() when the recorder saw it
    data: bytes
    jack_s: float = 0.0  # JACK's time of the cycle it arrived in, from the recorder's first message


class MidiRecorder:
    """A JACK MIDI input that records what arrives, for tests that listen to improv.

    ``with MidiRecorder() as recorder:`` opens a virtual input ``recorder.port``
    ("client:port") to connect a source to. The client name defaults to a
    unique one. Sysex, clock and active sensing are recorded too (rtmidi drops
    them by default).

    A thread polls rtmidi's queue every `poll_s` rather than using a callback:
    python-rtmidi runs callbacks on JACK's process thread, which then waits
    for the GIL, and its close_port frees the callback while that thread may
    still call it. So `time_s` is when the poll saw a message: up to `poll_s`
    (plus scheduling) after it arrived.
    """

    def __init__(
        self, client_name: str | None = None, port_name: str = "in", poll_s: float = 0.0005
    ) -> None:
        self.client_name = client_name or unique_client_name("improv-recorder")
        self.port_name = port_name
        self.poll_s = poll_s
        self.port = ""
        self._messages: list[Received] = []
        self._changed = threading.Condition()
        self._client: contextlib.ExitStack | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def __enter__(self) -> MidiRecorder:
        with contextlib.ExitStack() as stack:
            client = stack.enter_context(open_midi_in(self.client_name))
            client.ignore_types(sysex=False, timing=False, active_sense=False)
            self.port = open_virtual(client, self.port_name)
            self._stop.clear()
            self._poller = threading.Thread(
                target=self._poll, args=(client,), name=f"recorder-{self.port}", daemon=True
            )
            self._poller.start()
            self._client = stack.pop_all()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
            self._poller = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def _poll(self, client: rtmidi.MidiIn) -> None:
        """Move messages from rtmidi's queue to the list, stamped, until stopped.

        rtmidi's delta times come from JACK's clock in the process cycle, so their sum
        (`jack_s`) times every source alike, free of this thread's polling delay.
        """
        jack_s = 0.0
        while not self._stop.is_set():
            event = client.get_message()
            if event is None:
                time.sleep(self.poll_s)
                continue
            jack_s += event[1]
            received = Received(time.monotonic(), bytes(event[0]), jack_s)
            with self._changed:
                self._messages.append(received)
                self._changed.notify_all()

    @property
    def messages(self) -> list[Received]:
        """A copy of everything recorded so far, in arrival order."""
        with self._changed:
            return list(self._messages)

    def clear(self) -> None:
        with self._changed:
            self._messages.clear()

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout_s: float = 2.0
    ) -> list[Received]:
        """Wait until `predicate(messages)` holds and return those messages.

        Raises TimeoutError listing what did arrive, so a failing test shows it.
        """
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                snapshot = list(self._messages)
                if predicate(snapshot):
                    return snapshot
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    got = ", ".join(m.data.hex(" ") for m in snapshot[-10:]) or "nothing"
                    raise TimeoutError(
                        f"{self.port} did not get the expected MIDI within {timeout_s} s; "
                        f"got {len(snapshot)} messages (last: {got})"
                    )
                self._changed.wait(remaining)

    def wait_for_count(self, count: int, timeout_s: float = 2.0) -> list[Received]:
        """Wait for at least `count` messages; return all recorded."""
        return self.wait_for(lambda messages: len(messages) >= count, timeout_s)
