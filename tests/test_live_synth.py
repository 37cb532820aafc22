"""`improv --synth`: the player's notes and improv's answers sound on the built-in synth, and
panic, quit or a crash silence it. Audio goes to FluidSynth's memory, read back here."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from support.live import keyboard
from test_live_jack import live_session


pytestmark = [pytest.mark.jack, pytest.mark.slow]

LOUD = 300.0  # RMS (int16) of a note sounding; silence is near 0
SILENT = 20.0
RELEASE_S = 0.5  # a piano's release tail is shorter than this at mezzo-forte


def rms(frames: np.ndarray) -> float:
    return float(np.sqrt(np.mean(frames.astype(np.float64) ** 2))) if len(frames) else 0.0


def listen(synth, seconds: float) -> np.ndarray:
    """Render `seconds` of what the synth plays now (the memory driver renders on demand)."""
    return synth.read(int(synth.sample_rate * seconds))


def test_the_player_and_the_answer_sound_and_panic_silences(jack_server, tiny_model_file, soundfont: Path) -> None:
    session = live_session(jack_server, tiny_model_file, "--gap", "300", "--reply-notes", "64", "--thru",
                           "--synth", str(soundfont), "--audio-driver", "memory")
    with session, keyboard() as keys:
        synth = session.synth
        assert synth is not None and synth.audio_driver == "memory"
        session.start()
        listen(synth, 0.1)
        keys.send(0x90, 60, 100)  # the player holds a key: it sounds on the player's program
        time.sleep(0.1)
        assert rms(listen(synth, 0.2)) > LOUD
        keys.send(0x80, 60, 0)
        keys.phrase([62, 64, 65], step_s=0.15, hold_s=0.1)
        deadline = time.monotonic() + 5
        while session.engine.output.sounding("reply") == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert session.engine.output.sounding("reply") > 0  # the answer is playing ...
        assert rms(listen(synth, 0.2)) > LOUD  # ... and heard
        session.engine.command("panic")
        time.sleep(0.05)
        listen(synth, RELEASE_S)
        assert rms(listen(synth, 0.3)) < SILENT
        assert synth.active_voices() == 0


def test_closing_the_session_silences_and_closes_the_synth(jack_server, tiny_model_file, soundfont: Path) -> None:
    session = live_session(jack_server, tiny_model_file, "--thru", "--synth", str(soundfont), "--audio-driver", "memory")
    synth = session.synth
    with keyboard() as keys:
        session.start()
        keys.send(0x90, 67, 110)
        time.sleep(0.1)
        assert synth.active_voices() > 0
        session.close()  # as on quit, Ctrl-C or SIGTERM
    assert synth.closed and session.synth is None


@pytest.mark.parametrize("args, expected", [
    (["--synth", "/nowhere/none.sf2"], "none.sf2"),
    (["--synth", __file__], "SoundFont"),
    (["--synth", "SOUNDFONT", "--audio-driver", "no-such-driver"], "no-such-driver"),
])
def test_synth_problems_are_one_line_and_exit_2(jack_server, tiny_model_file, soundfont: Path, args, expected) -> None:
    args = [str(soundfont) if a == "SOUNDFONT" else a for a in args]
    result = subprocess.run(
        [sys.executable, "-m", "improv", "--headless", "--api", "jack", "--model", str(tiny_model_file), *args],
        capture_output=True, text=True, timeout=60, env=jack_server.env(),
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("improv: ") and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr
