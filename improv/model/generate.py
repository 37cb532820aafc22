"""Offline continuation: a primer's last notes form the rolling seed, the model goes on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from improv.music.events import Note, notes_to_events, quantize_time
from improv.model.rolling_seed import Constraints, Improviser
from improv.model.model_file import LoadedModel


def continue_notes(
    model: LoadedModel,
    primer: Sequence[Note],
    n_notes: int,
    temperature: float,
    rng: np.random.Generator,
    constraints: Constraints | None = None,
    top_p: float | None = None,
    seed_events: int = 64,
) -> list[Note]:
    """`n_notes` new notes following `primer` (which may be empty: start from silence)."""
    improviser = Improviser(model, seed_events)
    tail = sorted(primer, key=lambda n: (n.start, n.pitch))[-seed_events:]
    for event in notes_to_events(tail, origin=tail[0].start if tail else 0.0):
        improviser.observe(event)
    t = tail[-1].start if tail else 0.0
    out: list[Note] = []
    for _ in range(n_notes):
        sampled = improviser.sample(temperature, rng, constraints, top_p)
        t = quantize_time(t + sampled.event.step)
        e = sampled.event
        out.append(Note(e.pitch, e.velocity, t, e.duration))
    return out
