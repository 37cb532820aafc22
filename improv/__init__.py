"""improv: a real-time MIDI improvisation instrument.

Play a phrase on a MIDI keyboard; a small LSTM answers on a MIDI output.
The top level exposes the pieces a Python user reaches for first.
"""

from importlib.metadata import PackageNotFoundError, version

from improv.errors import ImprovError, MidiFileError, ModelFileError
from improv.music.events import Event, Note, events_to_notes, notes_to_events
from improv.midi.files import read_midi, read_midi_tracks, write_midi

try:
    __version__ = version("improv")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"



def __getattr__(name: str) -> object:
    """`improv.render_file` on first use: it loads FluidSynth, which nothing else at the top needs."""
    if name == "render_file":
        from improv.sound.synth import render_file

        return render_file
    raise AttributeError(f"module 'improv' has no attribute {name!r}")


__all__ = [
    "Event",
    "ImprovError",
    "MidiFileError",
    "ModelFileError",
    "Note",
    "__version__",
    "events_to_notes",
    "notes_to_events",
    "read_midi",
    "read_midi_tracks",
    "render_file",
    "write_midi",
]
