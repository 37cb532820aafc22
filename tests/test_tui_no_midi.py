"""No MIDI system at all (no ALSA sequencer, no JACK server): the screen opens playable, the letters play the
built-in synth and improv answers. Checked in-process with Textual's pilot and for real in tmux."""

from __future__ import annotations

import os
import shlex
import shutil
import time
from pathlib import Path

import pytest
from support.live import env_has_ci
from test_tui import async_test, screen_text, wait_until
from test_tui_tmux import Terminal

from improv.cli import build_parser
from improv.live.recording import IMPROV, PLAYER
from improv.tui import NO_MIDI_HINT, prepare_without_midi
from improv.tui.app import ImprovApp

pytestmark = [
    pytest.mark.skipif(Path("/dev/snd/seq").exists(), reason="this machine has an ALSA sequencer: MIDI is there"),
    pytest.mark.synth,
]


def no_midi_args(model: Path, tmp_path: Path, *extra: str) -> list[str]:
    # ALSA is what plain `improv` uses on Linux; with no /dev/snd it cannot open a port.
    return ["--api", "alsa", "--model", str(model), "--config", str(tmp_path / "config.toml"),
            "--audio-driver", "memory", "--gap", "300", "--reply-notes", "4", *extra]


@async_test
async def test_without_midi_the_screen_opens_with_the_piano_and_the_synth(tiny_model_file, soundfont, tmp_path) -> None:
    from improv.live.session import LiveSession

    args = build_parser().parse_args(no_midi_args(tiny_model_file, tmp_path, "--synth", str(soundfont)))
    session = LiveSession(args, ports_optional=True)
    try:
        assert session.input is None and session.output is None
        assert prepare_without_midi(session) is True
        assert session.synth is not None and session.problems[0] == NO_MIDI_HINT
        session.start()
        app = ImprovApp(session, sessions_dir=tmp_path / "sessions", piano=True, close_session=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: app.piano_on, what="the piano on at start")
            text = screen_text(app)
            assert NO_MIDI_HINT in text and "out built-in synth" in text
            status_lines = [line for line in app.status_text.splitlines() if line.strip()]
            assert len(status_lines) == 1 and len(status_lines[0]) <= 80, app.status_text
            for key in "asdf":
                await pilot.press(key)
                await pilot.pause(0.06)
            await wait_until(pilot, lambda: any(n.who == IMPROV for n in app.recording.notes), what="an answer")
            assert [n.who for n in app.recording.notes if n.who == PLAYER] == [PLAYER] * 4
            assert session.unsent == 0  # the synth is the output: nothing counted as lost
            await pilot.press("escape")
            await wait_until(pilot, lambda: session.engine.state().sounding == 0, what="silence")
            await pilot.press("ctrl+c")
    finally:
        session.close()


def test_a_midi_port_keeps_the_letters_as_commands(tiny_model_file, tmp_path, jack_server) -> None:
    from improv.live.session import LiveSession

    args = build_parser().parse_args(["--api", "jack", "--model", str(tiny_model_file),
                                      "--config", str(tmp_path / "config.toml")])
    session = LiveSession(args, ports_optional=True)
    try:
        assert prepare_without_midi(session) is False
        assert session.synth is None and NO_MIDI_HINT not in session.problems
    finally:
        session.close()


@pytest.mark.skipif(shutil.which("tmux") is None and not env_has_ci(), reason="needs tmux (apt install tmux)")
def test_plain_improv_without_midi_plays_from_the_letters_in_tmux(tiny_model_file, soundfont, tmp_path) -> None:
    term = Terminal(f"improv-nomidi-{os.getpid()}-{time.monotonic_ns()}")
    command = ["python", "-m", "improv", *no_midi_args(tiny_model_file, tmp_path, "--synth", str(soundfont))]
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "PATH": os.environ["PATH"], "VIRTUAL_ENV": os.environ.get("VIRTUAL_ENV", "")}
    settings = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    import sys

    command[0] = sys.executable
    term.tmux("-f", "/dev/null", "new-session", "-d", "-s", term.name, "-x", "80", "-y", "24", *settings,
              f"{shlex.join(command)}; echo EXITED $?; sleep 30")
    try:
        screen = term.wait_for("no MIDI ports", 60)  # the status line is painted last: wait for it, not the top
        assert "out built-in synth" in screen and "piano on" in screen
        for key in "asdf":
            term.press(key)
            time.sleep(0.08)
        term.wait_for("▒", 20)  # improv's notes on the roll: it answered
        term.press("C-c")
        assert "EXITED 0" in term.wait_for("EXITED", 20)
    finally:
        term.tmux("kill-server")
