"""What a model is, without torch: its config, its heads, its file format's name and version.

The live instrument plays a model file through numpy and compiled kernels and never needs torch
once the file's weights are cached (`model_file.load`); everything it reads about a model's
shape comes from here. The trainable network is `lstm.ImprovNet`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from improv.music.encoding import N_PITCH, Bins

FORMAT = "improv-lstm"
FORMAT_VERSION = 1

HEADS = ("step", "pitch", "duration", "velocity")


@dataclass
class ModelConfig:
    hidden: int = 320
    layers: int = 2
    embed: int = 128
    head_hidden: int = 256
    dropout: float = 0.3
    bins: dict = field(default_factory=lambda: Bins().to_dict())
    # Transposition-invariant pitch: the interval from the previous pitch as an input, and a
    # second pitch output over intervals added to the absolute one (as a Markov mix of absolute
    # and interval contexts does). Off for models trained before it existed.
    relative_pitch: bool = False
    # How much of the rhythm heads' (step, duration, velocity) gradient reaches the LSTM. Their
    # losses fall fast and then overfit, and at full strength they pull the shared trunk away
    # from pitch (held-out pitch learned about twice as slowly per update); 1.0 for older models.
    rhythm_grad: float = 1.0
    # A small LSTM of its own (one layer of this many units; 0: none) for the rhythm heads, added
    # to the main LSTM's output there: with rhythm_grad 0 the main LSTM learns pitch alone.
    rhythm_hidden: int = 0
    # The main LSTM sees only pitch and the times in seconds (as the study model did), not the
    # interval, bins and velocity: less to memorise. The rhythm LSTM still sees everything.
    lean_inputs: bool = False

    @property
    def binning(self) -> Bins:
        return Bins.from_dict(self.bins)


INTERVAL_RANGE = 24  # input intervals are clipped to +-2 octaves
N_INTERVAL_IN = 2 * INTERVAL_RANGE + 2  # ... plus one index for "no previous pitch"
N_INTERVAL_OUT = 2 * (N_PITCH - 1) + 1  # every interval between two MIDI pitches
