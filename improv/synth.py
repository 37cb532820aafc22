"""`improv.synth.render_file`, as the README has long documented it; the synth itself is `improv.sound`."""

from improv.sound.synth import render_file

__all__ = ["render_file"]
