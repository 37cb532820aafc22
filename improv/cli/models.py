"""`improv generate` and `improv evaluate`: offline use of a model file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from improv.errors import ConfigError, ModelFileError
from improv.model.temperature import check_temperature


def add_generate_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("generate", help="continue a MIDI file offline", description=(
        "Continue PRIMER.mid (its last notes form the rolling seed) or start from silence; "
        "writes a type-1 MIDI file with tracks 'primer' and 'continuation'."))
    p.add_argument("primer", nargs="?", type=Path, metavar="PRIMER.mid")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="OUT.mid")
    p.add_argument("--notes", type=int, default=64, help="notes to generate (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--random-seed", type=int, default=None)
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--key", default=None, help="e.g. C:minor, F#:dorian")
    p.add_argument("--range", dest="pitch_range", default=None, help="lowest-highest MIDI pitch, e.g. 36-96")
    p.add_argument("--max-polyphony", type=int, default=None)
    p.add_argument("--seed-events", type=int, default=64, help="primer events kept as the rolling seed")
    p.set_defaults(handler=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    from improv.model import sampling
    from improv.model.generate import continue_notes
    from improv.model.rolling_seed import Constraints
    from improv.midi.files import read_midi, write_midi

    if args.notes < 0:
        raise ConfigError(f"--notes must be >= 0, got {args.notes}")
    check_temperature(args.temperature)
    lo, hi = sampling.parse_range(args.pitch_range) if args.pitch_range else (0, 127)
    key = sampling.parse_key(args.key) if args.key else None
    constraints = Constraints(lo, hi, key, args.max_polyphony)
    constraints.pitch_mask()  # contradictory key + range fails here, before any work
    primer = read_midi(args.primer) if args.primer else []
    from improv.model.shipped import resolve_model

    model = resolve_model(args.model)
    rng = np.random.default_rng(args.random_seed)
    notes = continue_notes(model, primer, args.notes, args.temperature, rng, constraints, args.top_p, args.seed_events)
    write_midi({"primer": primer, "continuation": notes}, args.out)
    print(f"wrote {args.out}: {len(primer)} primer notes, {len(notes)} new notes", file=sys.stderr)
    return 0


def add_evaluate_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="NLL per head against baselines, and sampled-music statistics", description=(
        "Negative log-likelihood (nats/event) per head of the model, a unigram and a Markov baseline and, once "
        "trained, a study-style model, on the held-out works of the default corpus or on the given MIDI files; "
        "plus statistics of sampled continuations against the real ones. Slow parts are cached."))
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH", help=".mid/.midi files or folders to evaluate on")
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--set", choices=("held-out", "out-of-corpus", "madrigals"), default="held-out",
                   help="without PATH: the default corpus's held-out works, the out-of-corpus set (O'Neill's "
                        "1850 Irish dance tunes, a style never trained on) or Monteverdi's madrigals (also never "
                        "trained on) (default: %(default)s)")
    p.add_argument("--baseline-data", type=Path, action="append", metavar="PATH",
                   help="fit the baselines on these MIDI files or folders instead of the default training works")
    p.add_argument("--primers", type=int, default=32, help="held-out excerpts to continue (0: no sample statistics)")
    p.add_argument("--notes", type=int, default=64, help="notes per sampled continuation (default: %(default)s)")
    p.add_argument("--random-seed", type=int, default=0)
    p.set_defaults(handler=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from improv.training.evaluate import run

    return run(args)
