"""`improv evaluate`: how well a model predicts music it has not seen, against baselines.

Every number is a negative log-likelihood in nats per event, per head, on the
held-out works of the default corpus (or the out-of-corpus set, or the given
MIDI files), scored event by event from the start of each work, as
`train.evaluate_nll` does. Velocity is scored only on works with dynamics, for
every model alike. "event" is the sum of a model's heads along its own chain
(the model's pitch knows the step, a Markov pitch does not): the one number
that compares models fairly; "bits_per_second" is the same information per
second of music.

* model: the improv model file, teacher-forced through its own heads.
* unigram: how often each token occurs in the training works.
* markov: variable-order Markov models with interpolated Kneser-Ney
  smoothing (`markov.py`), the method of classic interactive continuators;
  pitch mixes an absolute-pitch model and a transposition-invariant
  interval model (also reported alone as markov_absolute / markov_interval).
* study: the study project's design on the same trunk (`study.py`); only
  its pitch head has a likelihood. Reported when one has been trained.

Baselines are fitted on the default training works (unless told otherwise),
and everything slow (fitted baselines, per-model results) is cached in the
user cache directory, so a second run takes seconds.

The sample statistics continue held-out excerpts at T = 1 and compare the
continuations with what the music really did next: pitch-class histogram
(total variation, per excerpt), pitch range, inter-onset intervals
(histogram over the model's step bins, total variation) and polyphony.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from improv.data.dataset import EventArrays, load_midi_files, to_sequence
from improv.music.encoding import N_PITCH, Bins
from improv.errors import ImprovError
from improv.music.events import Event, Note, events_to_notes
from improv.model.markov import MarkovModel, PitchMarkov, component_probabilities, fit_pitch_markov

# Bump when what is cached changes meaning: fitted baselines, and the results computed from them.
BASELINES_VERSION = 1
CACHE_VERSION = 2
HEADS = ("pitch", "step", "duration", "velocity")
DATA_SETS = ("held-out", "out-of-corpus", "madrigals")
# Orders chosen on a tenth of the training works held out from the rest (never on evaluation data).
MARKOV_ORDERS = {"pitch_absolute": 6, "pitch_interval": 8, "step": 10, "duration": 6, "velocity": 8}

Say = Callable[[str], None]


def _quiet(text: str) -> None:
    pass


# ------------------------------------------------------------------- data


def default_corpus_split(say: Say = _quiet, collections: Sequence[str] = ()) -> tuple[list[EventArrays], list[EventArrays]]:
    """Train and held-out works of the default corpus as event arrays (parsed once, then cached by corpus.py).

    `collections` (tune collections of `tunes.TUNE_COLLECTIONS`) add their training tunes to
    the training side; the held-out side stays the default set's held-out works.
    """
    try:
        from improv.data.corpus import load_default_corpus
        from improv.data.tunes import load_tunes
    except ImportError as error:  # music21 missing
        raise ImprovError(f"the default corpus needs music21: pip install 'improv[train]' ({error})") from None

    def progress(done: int, total: int, name: str) -> None:
        if done % 50 == 0 or done == total:
            say(f"parsed {done}/{total} corpus files")

    works = load_default_corpus(progress=progress)
    for collection in collections:
        works = works + [w for w in load_tunes(collection, progress=progress) if w.split == "train"]
    train = [to_sequence(w.name, w.notes, w.has_dynamics) for w in works if w.split == "train"]
    valid = [to_sequence(w.name, w.notes, w.has_dynamics) for w in works if w.split == "valid"]
    return train, valid


def out_of_corpus_set(say: Say = _quiet) -> list[EventArrays]:
    """The out-of-corpus set: every tune of `tunes.OUT_OF_CORPUS_COLLECTION` (never trained on)."""
    try:
        from improv.data.tunes import OUT_OF_CORPUS_COLLECTION, load_tunes
    except ImportError as error:  # music21 missing
        raise ImprovError(f"the out-of-corpus set needs music21: pip install 'improv[train]' ({error})") from None

    def progress(done: int, total: int, name: str) -> None:
        say(f"parsed {done}/{total} {OUT_OF_CORPUS_COLLECTION} files")

    works = load_tunes(OUT_OF_CORPUS_COLLECTION, progress=progress)
    return [to_sequence(w.name, w.notes, w.has_dynamics) for w in works]


def madrigal_set(say: Say = _quiet) -> list[EventArrays]:
    """The second out-of-corpus set: Monteverdi's madrigals (`tunes.load_madrigals`, never trained on)."""
    try:
        from improv.data.tunes import load_madrigals
    except ImportError as error:  # music21 missing
        raise ImprovError(f"the madrigal set needs music21: pip install 'improv[train]' ({error})") from None

    works = load_madrigals(progress=lambda done, total, name: say(f"parsed {done}/{total} madrigals"))
    return [to_sequence(w.name, w.notes, w.has_dynamics) for w in works]


def music_seconds(seq: EventArrays) -> float:
    """How long a work lasts: from its first onset to the end of its last note."""
    if not len(seq):
        return 0.0
    onsets = np.cumsum(seq.step) - seq.step[0]
    return float(np.max(onsets + seq.duration))


def sequences_from_files(paths: Sequence[Path], say: Say = _quiet) -> list[EventArrays]:
    """Event arrays of every readable MIDI file under `paths`; none readable is an ImprovError."""
    for path in paths:
        if not path.exists():
            raise ImprovError(f"{path}: no such file or folder")
    works, skipped = load_midi_files(paths, warn=say)
    if not works:
        where = " ".join(map(str, paths))
        raise ImprovError(f"no readable MIDI notes in {where}" + (f" ({skipped} files skipped)" if skipped else ""))
    return [to_sequence(name, notes) for name, notes in works]


def notes_of(seq: EventArrays) -> list[Note]:
    """The notes of a work back from its event arrays (exact: times are on the microsecond grid)."""
    events = [
        Event(int(p), float(s), float(d), int(v))
        for p, s, d, v in zip(seq.pitch.tolist(), seq.step.tolist(), seq.duration.tolist(), seq.velocity.tolist())
    ]
    return events_to_notes(events)


def sequences_key(sequences: Sequence[EventArrays]) -> str:
    """A digest of the data itself, so caches follow the data, not file names or dates."""
    h = hashlib.sha1()
    for seq in sequences:
        h.update(seq.name.encode() + b"\0" + bytes([seq.has_velocity]))
        for array in (seq.pitch, seq.step, seq.duration, seq.velocity):
            h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


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


# ----------------------------------------------------------- whole event

# What each model's heads are conditioned on, for the line under the table. The per-head
# columns do not compare like with like: only the whole event (their sum) does.
CONDITIONING = (
    "model: step | past events; pitch | past, step; duration | past, step, pitch; velocity | past, step, pitch, "
    "duration. Markov: each head | its own previous tokens only; unigram: nothing. Only 'event' (the sum of the "
    "heads along each model's own chain) compares like with like."
)
LN2 = math.log(2.0)


def add_event_totals(scores: dict[str, float], events: int, velocity_events: int, seconds: float) -> dict[str, float]:
    """`scores` with "event" (nats/event, the sum of its heads' NLLs) and "bits_per_second" added.

    Only a model with all of pitch, step and duration scored gets them (velocity adds where scored).
    Bits per second: the nats the model spends on all scored tokens of the set, in bits, over the
    set's seconds of music.
    """
    if not all(head in scores for head in ("pitch", "step", "duration")):
        return dict(scores)
    heads = [h for h in HEADS if h in scores]
    out = dict(scores)
    out["event"] = sum(scores[h] for h in heads)
    if seconds > 0:
        nats = sum(scores[h] * (velocity_events if h == "velocity" else events) for h in heads)
        out["bits_per_second"] = nats / LN2 / seconds
    return out


# ------------------------------------------------------------------ models


def network_from_loaded(model: Any) -> Any:
    """The trainable `ImprovNet` behind a loaded model file, for batched teacher-forced scoring."""
    from improv.model.network import network_from

    return network_from(model)


def model_nll(model: Any, sequences: Sequence[EventArrays]) -> dict[str, float]:
    """Per-head NLL of an improv model file (velocity only over works with dynamics)."""
    import torch

    from improv.training.train import evaluate_nll

    result = evaluate_nll(network_from_loaded(model), sequences, torch.device("cpu"))
    return {head: result[head] for head in HEADS if not math.isnan(result[head])}


def study_nll(model_config: dict, sequences: Sequence[EventArrays], cache: ResultCache, data_key: str) -> tuple[dict[str, float] | None, str]:
    """The cached study model of this trunk: its pitch NLL, and where it is (or how to make it)."""
    from improv.training import study

    config = study.StudyConfig.like(model_config)
    path = study.study_model_path(config)
    if not path.is_file():
        return None, f"none for hidden {config.hidden} x {config.layers}; train one: python -m improv.training.study --model FILE"
    key = _digest("study", CACHE_VERSION, file_digest(path), data_key)
    result = cache.get(key)
    if result is None:
        net, _ = study.load(path)
        result = {"pitch": study.evaluate_study(net, sequences)["pitch"]}
        cache.put(key, result)
    return result, str(path)


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


# --------------------------------------------------------------- pipeline


def evaluate(
    model_path: Path | None = None,
    paths: Sequence[Path] = (),
    baseline_paths: Sequence[Path] = (),
    settings: SampleSettings | None = None,
    cache_dir: Path | None = None,
    say: Say = _quiet,
    data_set: str = "held-out",
) -> dict[str, Any]:
    """The whole report as one JSON-ready dict (see the module docstring).

    `data_set` (when no `paths`): "held-out" (the default corpus's held-out works),
    "out-of-corpus" (`out_of_corpus_set`) or "madrigals" (`madrigal_set`). Baselines are
    fitted on the training works the model itself was trained on: the default set plus the
    tune collections its summary names.
    """
    from improv.model.shipped import resolve_model

    began = time.monotonic()
    settings = settings or SampleSettings()
    cache_dir = cache_dir or default_cache_dir()
    cache = ResultCache(cache_dir / "results.json")
    model = resolve_model(model_path)
    bins = model.bins

    corpus: tuple[list[EventArrays], list[EventArrays]] | None = None
    collections = [str(c) for c in model.summary.get("tune_collections", [])]

    def default_split() -> tuple[list[EventArrays], list[EventArrays]]:
        nonlocal corpus
        if corpus is None:
            corpus = default_corpus_split(say, collections)
        return corpus

    if data_set not in DATA_SETS:
        raise ImprovError(f"--set {data_set}: unknown; choose one of {', '.join(DATA_SETS)}")
    if paths:
        eval_seqs = sequences_from_files(paths, say)
        data = f"{len(eval_seqs)} MIDI files"
    elif data_set == "out-of-corpus":
        eval_seqs = out_of_corpus_set(say)
        data = "out-of-corpus set (O'Neill's 1850 Irish dance tunes, never trained on)"
    elif data_set == "madrigals":
        eval_seqs = madrigal_set(say)
        data = "Monteverdi's madrigals (out of corpus, never trained on)"
    else:
        eval_seqs = default_split()[1]
        data = "held-out works of the default corpus"
    if baseline_paths:
        train_seqs = sequences_from_files(baseline_paths, say)
        trained_on = f"{len(train_seqs)} MIDI files"
    else:
        train_seqs = default_split()[0]
        trained_on = "training works of the default corpus" + (f" + {', '.join(collections)} tunes" if collections else "")
    eval_key, train_key = sequences_key(eval_seqs), sequences_key(train_seqs)
    eval_tokens = tokenize(eval_seqs, bins)
    model_key = file_digest(model.path)

    result: dict[str, Any] = {}
    key = _digest("model", CACHE_VERSION, model_key, eval_key)
    if cache.get(key) is None:
        say("scoring the model")
        cache.put(key, model_nll(model, eval_seqs))
    result["model"] = cache.get(key)

    key = _digest("baselines", CACHE_VERSION, BASELINES_VERSION, train_key, eval_key, bins.to_dict(), MARKOV_ORDERS)
    if cache.get(key) is None:
        baselines = load_or_fit_baselines(train_seqs, train_key, bins, cache_dir, say)
        say("scoring the baselines")
        cache.put(key, {"scores": baselines.nll(eval_tokens), "markov": baselines.describe()})
    cached = cache.get(key)
    result.update(cached["scores"])

    study, study_where = study_nll(model.config, eval_seqs, cache, eval_key)
    if study is not None:
        result["study"] = study

    if settings.primers > 0:
        key = _digest("samples", CACHE_VERSION, model_key, eval_key, asdict(settings))
        if cache.get(key) is None:
            say(f"sampling up to {settings.primers} continuations at T = {settings.temperature:g}")
            cache.put(key, compare_continuations(model, eval_seqs, settings))
        result["samples"] = cache.get(key)

    events = sum(len(w.pitch) for w in eval_tokens)
    velocity_events = sum(len(w.pitch) for w in eval_tokens if w.has_velocity)
    seconds = sum(music_seconds(seq) for seq in eval_seqs)
    for name in ("model", "unigram", "markov"):
        if name in result:
            result[name] = add_event_totals(result[name], events, velocity_events, seconds)
    result["info"] = {
        "data": data,
        "works": len(eval_tokens),
        "events": events,
        "velocity_events": velocity_events,
        "seconds_of_music": round(seconds, 1),
        "conditioning": CONDITIONING,
        "model": str(model.path),
        "baselines_fitted_on": trained_on,
        "markov": cached["markov"],
        "study": study_where,
        "cache": str(cache_dir),
        "seconds": round(time.monotonic() - began, 1),
    }
    return result


# ------------------------------------------------------------------- report


_ROWS = (
    ("model", "model"),
    ("unigram", "unigram"),
    ("markov", "Markov (pitch: absolute + interval mix)"),
    ("markov_absolute", "  Markov, absolute pitch only"),
    ("markov_interval", "  Markov, intervals only"),
    ("study", "study-style (MSE step/duration)"),
)


def format_report(result: dict[str, Any]) -> str:
    """A plain table of NLLs (nats/event) and the sample statistics."""
    info = result["info"]
    lines = [
        f"{info['data']}: {info['works']} works, {info['events']} events ({info['velocity_events']} with dynamics)",
        f"model {info['model']}; baselines fitted on the {info['baselines_fitted_on']}",
        "",
        f"{'NLL, nats/event':<42}" + "".join(f"{h:>10}" for h in (*HEADS, "event")) + f"{'bits/s':>10}",
    ]
    for key, label in _ROWS:
        if key in result:
            lines.append(f"{label:<42}" + "".join(
                f"{result[key][h]:>10.3f}" if h in result[key] else f"{'-':>10}" for h in (*HEADS, "event"))
                + (f"{result[key]['bits_per_second']:>10.1f}" if "bits_per_second" in result[key] else f"{'-':>10}"))
    lines.append(f"conditioned on: {info['conditioning']}")
    lines.append(f"bits/s: the event NLL of all {info['events']} events in bits, over {info['seconds_of_music']:.0f} s of music")
    markov = info["markov"]
    lines.append(
        f"Markov orders: pitch absolute {markov['pitch']['absolute_order']} + interval {markov['pitch']['interval_order']}, "
        + ", ".join(f"{h} {markov[h]['order']}" for h in ("step", "duration", "velocity"))
    )
    if "study" not in result:
        lines.append(f"study-style model: {info['study']}")
    samples = result.get("samples")
    if samples and samples.get("excerpts"):
        m, r = samples["model"], samples["real"]
        lines += [
            "",
            f"{samples['excerpts']} continuations of {samples['notes']} notes after {samples['primer_notes']}-note "
            f"primers from the evaluated works, T = {samples['temperature']:g}",
            f"{'':<30}{'model':>10}{'real':>10}",
        ]
        for name, label in (("pitch_min", "lowest pitch"), ("pitch_max", "highest pitch"), ("pitch_std", "pitch std"),
                            ("polyphony", "polyphony at onsets"), ("ioi_median_s", "median inter-onset (s)")):
            lines.append(f"{label:<30}{m[name]:>10.2f}{r[name]:>10.2f}")
        lines.append(f"{'pitch-class TV to real':<30}{samples['pitch_class_tv']:>10.3f}{samples['pitch_class_tv_primer']:>10.3f}"
                     "   (real: the primer's own distance)")
        lines.append(f"{'inter-onset TV to real':<30}{samples['ioi_tv']:>10.3f}{samples['ioi_tv_primer']:>10.3f}")
    elif samples is not None:
        lines += ["", "no work is long enough for the sample statistics"]
    lines.append(f"({info['seconds']:.1f} s; cache {info['cache']})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """The `improv evaluate` command."""

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if args.primers < 0 or args.notes < 1:
        raise ImprovError(f"--primers must be >= 0 and --notes >= 1, got {args.primers} and {args.notes}")
    settings = SampleSettings(primers=args.primers, notes=args.notes, seed=args.random_seed)
    result = evaluate(args.model, args.paths, args.baseline_data or (), settings, say=say, data_set=args.set)
    if args.json:
        print(json.dumps(result))
    else:
        print(format_report(result))
    return 0
