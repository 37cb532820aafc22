"""`improv --api jack` in a real terminal (tmux): what a person sees and presses, and what the synth hears."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from support.jack_server import JackServer
from support.live import balance, env_has_ci, keyboard, listener, note_ons

pytestmark = [
    pytest.mark.jack,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None and not env_has_ci(), reason="needs tmux (apt install tmux)"),
]

PHRASE = [60, 62, 64, 65]
EXITED = "improv exited with"


class Terminal:
    """A detached tmux session on a private server, running one command."""

    def __init__(self, socket: str, name: str = "improv") -> None:
        self.socket = socket
        self.name = name

    def tmux(self, *args: str) -> str:
        result = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        if result.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name)

    def press(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def wait_for(self, pattern: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            text = self.screen()
            if re.search(pattern, text):
                return text
            if time.monotonic() > deadline:
                raise TimeoutError(f"{pattern!r} not on the screen after {timeout_s} s; the screen:\n{text}")
            time.sleep(0.05)


@contextlib.contextmanager
def terminal(server: JackServer, command: list[str], env: dict[str, str], width: int = 80,
             height: int = 24) -> Iterator[Terminal]:
    term = Terminal(f"improv-test-{os.getpid()}-{time.monotonic_ns()}")
    shell = f"{shlex.join(command)}; echo \"{EXITED} $?\"; sleep 60"
    settings = [f"{key}={value}" for key, value in {**env, "JACK_DEFAULT_SERVER": server.name,
                                                     "JACK_NO_START_SERVER": "1"}.items()]
    args = ["-f", "/dev/null", "new-session", "-d", "-s", term.name, "-x", str(width), "-y", str(height)]
    for setting in settings:
        args += ["-e", setting]
    term.tmux(*args, shell)
    try:
        yield term
    finally:
        with contextlib.suppress(Exception):
            term.tmux("kill-server")


def test_improv_in_tmux_shows_the_temperature_steps_it_and_quits_leaving_nothing_sounding(
    jack_server, tiny_model_file, tmp_path
) -> None:
    command = [sys.executable, "-m", "improv", "--api", "jack", "--model", str(tiny_model_file),
               "--config", str(tmp_path / "config.toml"), "--gap", "300", "--reply-notes", "64",
               "--random-seed", "4"]
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    with terminal(jack_server, command, env) as term:  # 80x24: the smallest screen improv is made for
        term.wait_for(r"temperature 1\.00", 90)
        screen = term.wait_for(r"in improv(-\d+)?:in \(virtual\)", 5)
        assert re.search(r"out improv(-\d+)?:out \(virtual\)", screen)
        assert "q quit" in screen and "? help" in screen
        term.press("Up")
        term.wait_for(r"temperature 1\.05", 3)
        with listener() as synth, keyboard() as keys:
            keys.phrase(PHRASE, step_s=0.15, hold_s=0.1)
            synth.wait_for(lambda m: len(note_ons(m)) >= 3, 15)  # the answer is under way
            screen = term.wait_for(r"▒", 3)  # improv's notes on the roll
            assert "█" in screen  # and the player's
            pressed = time.monotonic()
            term.press("q")
            final = term.wait_for(EXITED, 3)
            took = time.monotonic() - pressed
            time.sleep(0.2)  # anything still in flight through JACK
            heard = synth.messages
    assert took < 3.0
    assert f"{EXITED} 0" in final
    assert note_ons(heard)
    assert not balance(heard), f"left sounding: {balance(heard)}"
