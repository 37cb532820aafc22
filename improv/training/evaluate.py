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

from improv.data.sets import (
    Say,
    _quiet,
    default_corpus_split,
    madrigal_set,
    music_seconds,
    notes_of,
    out_of_corpus_set,
    sequences_from_files,
    sequences_key,
)
from improv.training.baselines import (
    BASELINES_VERSION,
    HEADS,
    MARKOV_ORDERS,
    Baselines,
    ResultCache,
    WorkTokens,
    _digest,
    default_cache_dir,
    file_digest,
    fit_baselines,
    load_or_fit_baselines,
    tokenize,
)
from improv.training.continuations import (
    SampleSettings,
    compare_continuations,
    music_statistics,
    pitch_class_histogram,
    polyphony,
    step_histogram,
    total_variation,
)
from improv.data.dataset import EventArrays, load_midi_files, to_sequence
from improv.music.encoding import N_PITCH, Bins
from improv.errors import ImprovError
from improv.music.events import Event, Note, events_to_notes
from improv.model.markov import MarkovModel, PitchMarkov, component_probabilities, fit_pitch_markov

CACHE_VERSION = 2
DATA_SETS = ("held-out", "out-of-corpus", "madrigals")


# ------------------------------------------------------------------- data


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
