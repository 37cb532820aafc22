"""Continue held-out excerpts and compare what the model played with what the music really did next:
pitch-class histogram, range, inter-onset intervals and polyphony."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from improv.data.sets import notes_of

from improv.data.dataset import EventArrays
from improv.music.encoding import Bins
from improv.music.events import Note


# ----------------------------------------------------------------- samples


@dataclass(frozen=True)
class SampleSettings:
    primers: int = 32
    primer_notes: int = 64
    notes: int = 64
    temperature: float = 1.0
    seed: int = 0


def pick_excerpts(sequences: Sequence[EventArrays], settings: SampleSettings) -> list[tuple[list[Note], list[Note]]]:
    """(primer, what really came next) from up to `primers` works long enough, at seeded random places."""
    need = settings.primer_notes + settings.notes
    eligible = [s for s in sequences if len(s) >= need]
    rng = np.random.default_rng(settings.seed)
    chosen = sorted(rng.permutation(len(eligible))[: settings.primers].tolist()) if eligible else []
    excerpts = []
    for index in chosen:
        notes = notes_of(eligible[index])
        start = int(rng.integers(0, len(notes) - need + 1))
        excerpts.append((notes[start : start + settings.primer_notes], notes[start + settings.primer_notes : start + need]))
    return excerpts


def pitch_class_histogram(notes: Sequence[Note]) -> np.ndarray:
    counts = np.bincount([n.pitch % 12 for n in notes], minlength=12).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Half the L1 distance of two histograms: 0 the same, 1 disjoint."""
    return 0.5 * float(np.abs(p / max(p.sum(), 1e-12) - q / max(q.sum(), 1e-12)).sum())


def step_histogram(notes: Sequence[Note], bins: Bins) -> np.ndarray:
    """Counts of inter-onset intervals (event steps, 0 for chord tones) over the step bins."""
    starts = sorted(n.start for n in notes)
    steps = np.diff(np.array(starts, dtype=np.float64))
    index = bins.encode_arrays(steps, steps, np.ones(len(steps), dtype=np.int64))[0]
    return np.bincount(index, minlength=bins.n_step).astype(np.float64)


def polyphony(notes: Sequence[Note]) -> float:
    """Mean number of notes sounding at each distinct onset (a note sounds from its start to its end)."""
    onsets = sorted({n.start for n in notes})
    if not onsets:
        return 0.0
    return float(np.mean([sum(1 for n in notes if n.start <= t and (t < n.end or n.start == t)) for t in onsets]))


def music_statistics(excerpts: Sequence[Sequence[Note]]) -> dict[str, float]:
    """Means over excerpts of pitch range and spread, polyphony and the median inter-onset interval."""
    excerpts = [e for e in excerpts if e]
    if not excerpts:
        return {}
    iois = np.concatenate([np.diff(sorted({n.start for n in e})) for e in excerpts])
    return {
        "pitch_min": float(np.mean([min(n.pitch for n in e) for e in excerpts])),
        "pitch_max": float(np.mean([max(n.pitch for n in e) for e in excerpts])),
        "pitch_std": float(np.mean([np.std([n.pitch for n in e]) for e in excerpts])),
        "polyphony": float(np.mean([polyphony(e) for e in excerpts])),
        "ioi_median_s": float(np.median(iois)) if len(iois) else 0.0,
    }


def _mean_tv(excerpts: Sequence[Sequence[Note]], real: Sequence[Sequence[Note]]) -> float:
    """Mean pitch-class total variation between paired excerpts."""
    return float(np.mean([total_variation(pitch_class_histogram(a), pitch_class_histogram(b)) for a, b in zip(excerpts, real)]))


def compare_continuations(model: Any, sequences: Sequence[EventArrays], settings: SampleSettings) -> dict[str, Any]:
    """Sampled continuations of held-out excerpts against the real continuations."""
    from improv.model.generate import continue_notes

    excerpts = pick_excerpts(sequences, settings)
    rng = np.random.default_rng(settings.seed)
    generated = [
        continue_notes(model, primer, settings.notes, settings.temperature, rng, seed_events=settings.primer_notes)
        for primer, _ in excerpts
    ]
    primers = [primer for primer, _ in excerpts]
    real = [after for _, after in excerpts]
    out: dict[str, Any] = {"excerpts": len(excerpts), **{k: v for k, v in asdict(settings).items() if k != "primers"}}
    if not excerpts:
        return out
    bins = model.bins

    def pooled_steps(groups: Sequence[Sequence[Note]]) -> np.ndarray:
        return np.sum([step_histogram(g, bins) for g in groups], axis=0)

    out["model"] = music_statistics(generated)
    out["real"] = music_statistics(real)
    # Distances of the model's continuations from the real ones. The "_primer" variants measure the
    # primers against the real continuations: how far the music itself drifts, a yardstick.
    out["pitch_class_tv"] = _mean_tv(generated, real)
    out["pitch_class_tv_primer"] = _mean_tv(primers, real)
    out["ioi_tv"] = total_variation(pooled_steps(generated), pooled_steps(real))
    out["ioi_tv_primer"] = total_variation(pooled_steps(primers), pooled_steps(real))
    return out
