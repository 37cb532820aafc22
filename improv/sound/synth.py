"""The built-in General MIDI synthesizer: FluidSynth playing a SoundFont, live or offline.

One import for what the synth offers, in parts: `Synth` plays raw MIDI live or
into memory (`improv.sound.fluid_synth`), `render`/`render_file` turn notes or a
MIDI file into 16-bit stereo audio and WAV files (`improv.sound.render`), the
channel and program helpers are in `improv.sound.channels`, and the FluidSynth
library is loaded on first use (`improv.sound.fluid_library`), so the rest of
improv runs on machines that do not have it.
"""

from __future__ import annotations

from improv.sound.channels import (
    DRUM_CHANNEL,
    IMPROV_CHANNEL,
    IMPROV_PROGRAM,
    PLAYER_CHANNEL,
    PLAYER_PROGRAM,
    parse_message,
    rechannel,
)
from improv.sound.fluid_library import LIBRARY_HINT, fluidsynth_available
from improv.sound.fluid_synth import (
    AUTO_DRIVERS,
    BUFFER_FRAMES_RANGE,
    DEFAULT_BUFFER_FRAMES,
    DEFAULT_GAIN,
    DEFAULT_SAMPLE_RATE,
    MEMORY_DRIVER,
    SAMPLE_RATE_RANGE,
    Synth,
    buffer_latency_ms,
    buffer_periods,
)
from improv.sound.render import (
    IMPROV_TRACKS,
    MAX_TAIL_S,
    SILENT_SAMPLE,
    Rendered,
    default_programs,
    render,
    render_file,
    write_wav,
)

__all__ = [
    "AUTO_DRIVERS",
    "BUFFER_FRAMES_RANGE",
    "DEFAULT_BUFFER_FRAMES",
    "DEFAULT_GAIN",
    "DEFAULT_SAMPLE_RATE",
    "DRUM_CHANNEL",
    "IMPROV_CHANNEL",
    "IMPROV_PROGRAM",
    "IMPROV_TRACKS",
    "LIBRARY_HINT",
    "MAX_TAIL_S",
    "MEMORY_DRIVER",
    "PLAYER_CHANNEL",
    "PLAYER_PROGRAM",
    "Rendered",
    "SAMPLE_RATE_RANGE",
    "SILENT_SAMPLE",
    "Synth",
    "buffer_latency_ms",
    "buffer_periods",
    "default_programs",
    "fluidsynth_available",
    "parse_message",
    "rechannel",
    "render",
    "render_file",
    "write_wav",
]
