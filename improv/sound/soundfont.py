"""Find a General MIDI SoundFont on this machine. Nothing is ever downloaded.

The order: a path given on the command line, then the one set in the config
file, then the user's own folder (`soundfonts/` in improv's user data
directory) and the places that system packages install to (Debian/Ubuntu,
Fedora/Arch, Homebrew, MuseScore, macOS sound banks).
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from improv.errors import SynthError

SOUNDFONT_SUFFIXES = (".sf2", ".sf3")

# Searched in order; a pattern may match several files (taken sorted). The first
# lines are the distributions' "default GM SoundFont" links, then full GM sets,
# then small ones; Homebrew's VintageDreamsWaves (synth waves, not a piano) last.
_SYSTEM_PATTERNS = (
    # Debian/Ubuntu: the alternatives link to the preferred installed GM SoundFont.
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf3/default-GM.sf3",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "/usr/share/sounds/sf2/*.sf2",
    "/usr/share/sounds/sf3/*.sf3",
    # Fedora, Arch, openSUSE; FluidSynth's own default location.
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/*.sf[23]",
    "/usr/local/share/soundfonts/*.sf[23]",
    "~/.local/share/soundfonts/*.sf[23]",
    # MuseScore's bundled General SoundFont (Linux packages, macOS app, Windows installer).
    "/usr/share/mscore*/sound/*.sf[23]",
    "/usr/share/musescore*/sound/*.sf[23]",
    "/Applications/MuseScore*.app/Contents/Resources/sound/*.sf[23]",
    "$PROGRAMFILES/MuseScore*/sound/*.sf[23]",
    "C:/soundfonts/*.sf[23]",
    # macOS sound banks, then Homebrew.
    "~/Library/Audio/Sounds/Banks/*.sf[23]",
    "/Library/Audio/Sounds/Banks/*.sf[23]",
    "$HOMEBREW_PREFIX/share/soundfonts/*.sf[23]",
    "/opt/homebrew/share/soundfonts/*.sf[23]",
    "$HOMEBREW_PREFIX/share/fluid-synth/sf2/*.sf2",
    "/opt/homebrew/share/fluid-synth/sf2/*.sf2",
    "/usr/local/share/fluid-synth/sf2/*.sf2",
)


def user_soundfont_dir() -> Path:
    """Where a user can drop a .sf2/.sf3 file for improv to find (e.g. ~/.local/share/improv/soundfonts)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("improv")) / "soundfonts"


def search_patterns() -> list[str]:
    """Every place `find_soundfont` looks after the given and configured paths, in order."""
    user = user_soundfont_dir()
    return [str(user / "*.sf2"), str(user / "*.sf3"), *_SYSTEM_PATTERNS]


def _expand(pattern: str) -> list[Path]:
    if "$" in pattern:
        expanded = os.path.expandvars(pattern)
        if "$" in expanded:  # an unset variable: nothing to look at
            return []
        pattern = expanded
    pattern = os.path.expanduser(pattern)
    return [Path(p) for p in sorted(glob.glob(pattern))]


def install_hint(platform: str | None = None) -> str:
    """How to get a SoundFont on this platform, in one clause."""
    platform = platform or sys.platform
    user_dir = user_soundfont_dir()
    if platform.startswith("linux"):
        return "install one with 'sudo apt install fluid-soundfont-gm' (Debian/Ubuntu; or timgm6mb-soundfont, 6 MB)"
    if platform == "darwin":
        return ("install one with 'brew install fluid-synth' (small) or 'brew install --cask musescore' "
                f"(MuseScore's General SoundFont), or put a .sf2 file in {user_dir}")
    if platform.startswith("win"):
        return f"put a General MIDI .sf2 file in {user_dir} (or install MuseScore, which brings one)"
    return f"put a General MIDI .sf2 file in {user_dir}"


def check_soundfont(path: str | Path, origin: str = "") -> Path:
    """`path` if it is a readable SoundFont file (RIFF ... sfbk), else a one-line `SynthError` naming it."""
    where = f"{path}{origin}"
    candidate = Path(path).expanduser()
    if not candidate.exists():
        raise SynthError(f"{where}: no such SoundFont file")
    if candidate.is_dir():
        raise SynthError(f"{where}: is a directory, not a .sf2/.sf3 SoundFont file")
    try:
        with candidate.open("rb") as file:
            header = file.read(12)
    except OSError as error:
        raise SynthError(f"{where}: cannot read SoundFont: {error.strerror or error}") from None
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"sfbk":
        raise SynthError(f"{where}: not a SoundFont (a .sf2/.sf3 file starts with RIFF....sfbk)")
    declared = int.from_bytes(header[4:8], "little") + 8
    actual = candidate.stat().st_size
    if actual < declared:
        raise SynthError(f"{where}: damaged SoundFont: {actual} bytes where its header promises {declared} (truncated?)")
    return candidate


def find_soundfont(
    given: str | Path | None = None,
    configured: str | None = None,
    *,
    locations: Iterable[str] | None = None,
) -> Path:
    """The SoundFont to play with: `given`, else `configured`, else the first one installed.

    A given or configured path that is missing or not a SoundFont is an error
    (no silent fallback to another sound). `locations` replaces the search
    patterns of `search_patterns()`. Raises `SynthError` with a one-line
    message that says how to install one when none is found.
    """
    if given is not None and str(given) != "":
        return check_soundfont(given)
    if configured:
        return check_soundfont(configured, " (the SoundFont set in config.toml)")
    patterns: Sequence[str] = list(locations) if locations is not None else search_patterns()
    for pattern in patterns:
        for candidate in _expand(pattern):
            if candidate.suffix.lower() not in SOUNDFONT_SUFFIXES or not candidate.is_file():
                continue
            try:
                return check_soundfont(candidate)
            except SynthError:
                continue  # a broken file in a system folder: look further
    raise SynthError(f"no SoundFont found: {install_hint()}, or give the path of a .sf2/.sf3 file")
