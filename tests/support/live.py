"""Playing improv over real JACK MIDI, as a musician's keyboard and a synth would."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import rtmidi

from support.jack_server import (
    JackServer,
    MidiRecorder,
    Received,
    connect_ports,
    open_midi_in,
    open_midi_out,
    open_virtual,
    unique_client_name,
    wait_for_port,
)

IMPROV_IN = r"^improv(-\d+)?:in$"
IMPROV_OUT = r"^improv(-\d+)?:out$"


def balance(messages: Sequence[Received]) -> Counter:
    """Note-ons minus note-offs per (channel, pitch); empty when nothing is left sounding."""
    count: Counter = Counter()
    for m in messages:
        if len(m.data) < 3:
            continue
        kind, key = m.data[0] & 0xF0, (m.data[0] & 0x0F, m.data[1])
        if kind == 0x90 and m.data[2] > 0:
            count[key] += 1
        elif kind == 0x80 or kind == 0x90:
            count[key] -= 1
    return +count


def note_ons(messages: Sequence[Received]) -> list[Received]:
    return [m for m in messages if len(m.data) == 3 and m.data[0] & 0xF0 == 0x90 and m.data[2] > 0]


class Keyboard:
    """An outside JACK client with an output port, connected to improv's input."""

    def __init__(self, client: rtmidi.MidiOut, port: str) -> None:
        self.client = client
        self.port = port

    def send(self, *data: int) -> None:
        self.client.send_message(list(data))

    def phrase(self, pitches: Sequence[int], step_s: float = 0.2, hold_s: float = 0.15, velocity: int = 90) -> None:
        for pitch in pitches:
            self.send(0x90, pitch, velocity)
            time.sleep(hold_s)
            self.send(0x80, pitch, 0)
            time.sleep(max(step_s - hold_s, 0.0))


@contextlib.contextmanager
def keyboard(destination_pattern: str = IMPROV_IN) -> Iterator[Keyboard]:
    with open_midi_out(unique_client_name("keys")) as client:
        port = open_virtual(client, "out")
        sink = wait_for_port(client, destination_pattern, 5.0)
        connect_ports(port, sink)
        yield Keyboard(client, port)


@contextlib.contextmanager
def listener(source_pattern: str = IMPROV_OUT) -> Iterator[MidiRecorder]:
    with MidiRecorder() as recorder:
        with open_midi_in(unique_client_name("probe")) as probe:
            source = wait_for_port(probe, source_pattern, 5.0)
        connect_ports(source, recorder.port)
        yield recorder


class ImprovProcess:
    """`improv --headless --api jack ...` as a subprocess, its stdout read line by line."""

    def __init__(self, server: JackServer, *args: str) -> None:
        env = server.env()
        env["PYTHONUNBUFFERED"] = "1"
        self.home = tempfile.mkdtemp(prefix="improv-home-")  # not the user's own config and sessions; removed by close
        env["XDG_CONFIG_HOME"], env["XDG_DATA_HOME"] = f"{self.home}/config", f"{self.home}/data"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "improv", "--headless", "--api", "jack", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_line(self, pattern: str, timeout_s: float = 20.0) -> str:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        for line in self.seen:
            if regex.search(line):
                self.seen.remove(line)
                return line
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                err = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
                raise TimeoutError(f"no line matching {pattern!r}; got {self.seen!r} {err}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if regex.search(line):
                return line
            self.seen.append(line)

    def signal(self, signum: int) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.home, ignore_errors=True)


@contextlib.contextmanager
def improv_process(server: JackServer, model: Path, *args: str) -> Iterator[ImprovProcess]:
    improv = ImprovProcess(server, "--model", str(model), *args)
    try:
        improv.wait_line("listening on", 60)
        yield improv
    finally:
        improv.close()


def env_has_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")
