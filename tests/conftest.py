"""Shared fixtures. One section per concern; add new ones under their own heading."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.jack_server import JackServer, jack_available, missing_jack_tools


def in_ci() -> bool:
    """CI=<anything but empty, 0 or false> means: never skip, fail loudly."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


# --- JACK: real MIDI ---------------------------------------------------------
#
# Tests marked `jack` (or using `jack_server`) talk MIDI through a private JACK
# server with the dummy driver. Without jackd they are skipped locally; in CI
# they run anyway and fail, so a broken CI image cannot pass silently.


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "jack_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.jack)
        if "soundfont" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.synth)
    if jack_available() or in_ci():
        return
    missing = ", ".join(missing_jack_tools()) or "rtmidi's JACK API"
    skip = pytest.mark.skip(
        reason=f"JACK MIDI tests need {missing}; install Debian's jackd2 (set CI=1 to fail instead)"
    )
    for item in items:
        if "jack" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def jack_server() -> Iterator[JackServer]:
    """One JACK server for the session; JACK_DEFAULT_SERVER points at it meanwhile."""
    with JackServer() as server:
        yield server


# --- models ------------------------------------------------------------------
#
# A tiny untrained model: loads in milliseconds, samples valid events. Tests
# that need musical answers use the shipped model instead.


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from improv.model.network import ImprovNet, ModelConfig, export

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    export(ImprovNet(ModelConfig(hidden=32, embed=16, head_hidden=32)).eval(), path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tiny_model_file: Path):
    from improv.model.network import load

    return load(tiny_model_file)


# --- synth: FluidSynth and a SoundFont ---------------------------------------
#
# Tests using `soundfont` (marked `synth`) play real audio through FluidSynth
# (Debian's libfluidsynth3) with a General MIDI SoundFont (timgm6mb-soundfont);
# .ci/run installs both. Without them these tests fail rather than skip, so a
# machine missing them cannot pass silently; IMPROV_SKIP_SYNTH=1 skips them.

SKIP_SYNTH_ENV = "IMPROV_SKIP_SYNTH"
TEST_SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")  # small, and what the thresholds were measured with


@pytest.fixture(scope="session")
def soundfont() -> Path:
    from improv.errors import SynthError
    from improv.sound.soundfont import find_soundfont
    from improv.sound.synth import LIBRARY_HINT, fluidsynth_available

    problem = ""
    path = TEST_SOUNDFONT
    if not fluidsynth_available():
        problem = f"the FluidSynth library is missing: {LIBRARY_HINT}"
    elif not TEST_SOUNDFONT.is_file():
        try:
            path = find_soundfont()
        except SynthError as error:
            problem = str(error)
    if problem:
        if os.environ.get(SKIP_SYNTH_ENV, "").strip().lower() not in ("", "0", "false"):
            pytest.skip(f"synth tests skipped ({SKIP_SYNTH_ENV}): {problem}")
        pytest.fail(f"{problem}; set {SKIP_SYNTH_ENV}=1 to skip the synth tests", pytrace=False)
    return path
