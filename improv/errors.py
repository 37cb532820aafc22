"""Every error improv reports to a user, in one place.

Each carries a one-line message that says what failed and, where it can,
how to fix it; the command line prints it and exits with code 2.
"""


class ImprovError(Exception):
    """Base of the errors that the command line reports in one line."""


class MidiFileError(ImprovError, ValueError):
    """A file that cannot be read as MIDI."""


class ModelFileError(ImprovError, ValueError):
    """A file that is not an improv model."""


class PortError(ImprovError):
    """A MIDI port that cannot be found or opened."""


class ConfigError(ImprovError, ValueError):
    """A configuration file or value that cannot be used."""


class SynthError(ImprovError):
    """The built-in synthesizer cannot start: no FluidSynth, no SoundFont, no audio output."""
