"""The baselines a model is measured against: unigram and variable-order Markov models per head, fitted on
the model's own training works and cached, with the results computed from them."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from improv.data.sets import Say, _quiet

from improv.data.dataset import EventArrays
from improv.music.encoding import N_PITCH, Bins
from improv.model.markov import MarkovModel, PitchMarkov, component_probabilities, fit_pitch_markov

# Bump when what is cached changes meaning: fitted baselines, and the results computed from them.
BASELINES_VERSION = 1
HEADS = ("pitch", "step", "duration", "velocity")
# Orders chosen on a tenth of the training works held out from the rest (never on evaluation data).
MARKOV_ORDERS = {"pitch_absolute": 6, "pitch_interval": 8, "step": 10, "duration": 6, "velocity": 8}


@dataclass(frozen=True)
class WorkTokens:
    """One work as the four token streams the heads predict."""

    pitch: list[int]
    step: list[int]
    duration: list[int]
    velocity: list[int]
    has_velocity: bool

    def head(self, name: str) -> list[int]:
        return getattr(self, name)


def tokenize(sequences: Sequence[EventArrays], bins: Bins) -> list[WorkTokens]:
    out = []
    for seq in sequences:
        if not len(seq):
            continue
        steps, durations, velocities = bins.encode_arrays(seq.step, seq.duration, seq.velocity)
        out.append(WorkTokens(seq.pitch.tolist(), steps.tolist(), durations.tolist(), velocities.tolist(), seq.has_velocity))
    return out


def _scored(works: Sequence[WorkTokens], head: str) -> list[list[int]]:
    """The sequences a head is scored (or fitted) on: velocity only where the work has dynamics."""
    return [w.head(head) for w in works if head != "velocity" or w.has_velocity]


# -------------------------------------------------------------- baselines


@dataclass
class Baselines:
    """Unigram and Markov models per head, fitted on training works."""

    bins: Bins
    unigram: dict[str, MarkovModel]
    markov: dict[str, Any]  # "pitch": PitchMarkov, other heads: MarkovModel

    def nll(self, works: Sequence[WorkTokens]) -> dict[str, dict[str, float]]:
        """{"unigram": {head: nats/event}, "markov": {...}, "markov_absolute": {"pitch"}, "markov_interval": {"pitch"}}."""
        out: dict[str, dict[str, float]] = {"unigram": {}, "markov": {}, "markov_absolute": {}, "markov_interval": {}}
        for head in HEADS:
            sequences = _scored(works, head)
            events = sum(map(len, sequences))
            if not events:
                continue
            out["unigram"][head] = sum(self.unigram[head].nll(s) for s in sequences) / events
            if head == "pitch":
                pitch: PitchMarkov = self.markov["pitch"]
                probabilities, matched = component_probabilities(pitch, sequences)
                weights = np.array(pitch.weights)[matched + 1]
                mixed = weights * probabilities[:, 0] + (1 - weights) * probabilities[:, 1]
                out["markov"][head] = float(-np.log(mixed).mean())
                out["markov_absolute"][head] = float(-np.log(probabilities[:, 0]).mean())
                out["markov_interval"][head] = float(-np.log(probabilities[:, 1]).mean())
            else:
                out["markov"][head] = sum(self.markov[head].nll(s) for s in sequences) / events
        return {name: values for name, values in out.items() if values}

    def describe(self) -> dict[str, Any]:
        pitch: PitchMarkov = self.markov["pitch"]
        return {
            "pitch": {
                "absolute_order": pitch.absolute.order,
                "interval_order": pitch.interval.order,
                "absolute_weight_by_interval_match": [round(w, 2) for w in pitch.weights],
            },
            **{head: {"order": self.markov[head].order} for head in ("step", "duration", "velocity")},
            "smoothing": "interpolated modified Kneser-Ney",
        }


def fit_baselines(train: Sequence[WorkTokens], bins: Bins, orders: dict[str, int] | None = None) -> Baselines:
    """Fit every baseline on the training works (velocity on those with dynamics, if any have them)."""
    orders = {**MARKOV_ORDERS, **(orders or {})}
    vocab = {"pitch": N_PITCH, "step": bins.n_step, "duration": bins.n_duration, "velocity": bins.n_velocity}
    unigram: dict[str, MarkovModel] = {}
    markov: dict[str, Any] = {}
    for head in HEADS:
        sequences = _scored(train, head) or [w.head(head) for w in train]
        unigram[head] = MarkovModel(vocab[head], 0).fit(sequences)
        if head == "pitch":
            markov[head] = fit_pitch_markov(sequences, orders["pitch_absolute"], orders["pitch_interval"])
        else:
            markov[head] = MarkovModel(vocab[head], orders[head]).fit(sequences)
    return Baselines(bins, unigram, markov)


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("improv")) / "evaluate"


def _digest(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _load_pickle(path: Path) -> Any:
    gc.disable()  # millions of small dicts: the collector would triple the load time
    try:
        with path.open("rb") as f:
            return pickle.load(f)
    finally:
        gc.enable()


def baselines_path(train_key: str, bins: Bins, cache_dir: Path) -> Path:
    return cache_dir / f"baselines-{_digest(BASELINES_VERSION, train_key, bins.to_dict(), MARKOV_ORDERS)}.pkl"


def load_or_fit_baselines(
    train_seqs: Sequence[EventArrays], train_key: str, bins: Bins, cache_dir: Path, say: Say = _quiet
) -> Baselines:
    """The fitted baselines from the cache, or fitted now (and cached)."""
    path = baselines_path(train_key, bins, cache_dir)
    if path.is_file():
        try:
            baselines = _load_pickle(path)
            if isinstance(baselines, Baselines):
                return baselines
        except Exception as error:  # noqa: BLE001 - a bad cache is refitted, not fatal
            say(f"ignoring unreadable cache {path}: {' '.join(str(error).split())[:100]}")
    say("fitting unigram and Markov baselines on the training works (once; cached)")
    baselines = fit_baselines(tokenize(train_seqs, bins), bins)
    _write_atomic(path, pickle.dumps(baselines, protocol=pickle.HIGHEST_PROTOCOL))
    return baselines


class ResultCache:
    """Small results (dicts of numbers) in one JSON file, keyed by what they depend on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.entries: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def get(self, key: str) -> Any:
        return self.entries.get(key)

    def put(self, key: str, value: Any) -> None:
        self.entries[key] = value
        _write_atomic(self.path, json.dumps(self.entries, indent=1).encode())


def file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
