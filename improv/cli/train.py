"""`improv train`: gather data (default corpus or the user's MIDI files), train, report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from improv.errors import ImprovError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model on the default corpus or on your own MIDI files",
        description="Train an improv model. Without PATH, trains on the music21 corpus (needs the 'train' extra). "
                    "With --finetune MODEL, continues MODEL on your own files or saved sessions (their player track).",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help=".mid/.midi files or folders (searched recursively)")
    p.add_argument("--out", type=Path, default=Path("improv-model.pt"), help="model file to write (default: %(default)s)")
    p.add_argument("--finetune", type=Path, metavar="MODEL", default=None,
                   help="start from MODEL (same interface out); PATH... are then required, e.g. saved sessions")
    p.add_argument("--no-guard", action="store_true",
                   help="fine-tuning: do not watch the default corpus's held-out works against forgetting")
    p.add_argument("--minutes", type=float, default=None, help="wall-clock budget (default: 55; from --init 30; fine-tuning 10)")
    p.add_argument("--epochs", type=int, default=200, help="maximum epochs (default: %(default)s)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    p.add_argument("--hidden", type=int, default=256, help="LSTM units per layer (default: %(default)s)")
    p.add_argument("--layers", type=int, default=2, help="LSTM layers (default: %(default)s)")
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--relative-pitch", action="store_true",
                   help="add an interval input and a pitch output over intervals (transposition-invariant)")
    p.add_argument("--absolute-pitch", action="store_true", help=argparse.SUPPRESS)  # the default now
    p.add_argument("--rhythm-grad", type=float, default=0.0,
                   help="share of the step/duration/velocity heads' gradient that reaches the main LSTM (default: %(default)s)")
    p.add_argument("--full-inputs", action="store_true",
                   help="the main LSTM sees every input (interval, bins, velocity); by default it sees only pitch "
                        "and times in seconds, which overfits less")
    p.add_argument("--rhythm-hidden", type=int, default=128,
                   help="units of the rhythm heads' own LSTM, 0 for none (default: %(default)s)")
    p.add_argument("--batch", type=int, default=64, help="windows per optimizer step (default: %(default)s)")
    p.add_argument("--length", type=int, default=128, help="events per training window (default: %(default)s)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: 2e-3; from --init or fine-tuning 3e-4)")
    p.add_argument("--patience", type=int, default=6, help="epochs without improvement in any head before stopping")
    p.add_argument("--lr-patience", type=int, default=1, help="epochs without improvement before the learning rate halves")
    p.add_argument("--random-seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--run-dir", type=Path, default=None, help="checkpoints (default: OUT with suffix .run)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    p.add_argument("--include-drums", action="store_true", help="keep channel-10 drum notes")
    p.add_argument("--label-smoothing", type=float, default=0.0,
                   help="share of each training target spread over all tokens (default: %(default)s)")
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                   help="do not fit one temperature per head on the validation sets (by default they are fitted "
                        "and baked into the file)")
    p.add_argument("--keep-epochs", action="store_true", help="save every epoch's weights in the run directory")
    p.add_argument("--folk-share", type=float, default=0.3,
                   help="share of training windows drawn from the folk tunes (default: %(default)s)")
    p.add_argument("--no-folk", action="store_true",
                   help="default corpus only: leave out the Essen folk tunes added to it (data/tunes.py TRAINING_COLLECTIONS)")
    p.add_argument("--init", type=Path, metavar="MODEL", default=None,
                   help="start from MODEL's weights (its architecture; the size options are ignored) and train on the "
                        "default corpus as usual")
    p.set_defaults(handler=run)


def _default_corpus_sequences(say):
    try:
        from improv.data.corpus import load_default_corpus
    except ImportError as error:  # music21 missing
        raise ImprovError(f"the default corpus needs music21: pip install 'improv[train]' ({error})") from None
    from improv.data.dataset import to_sequence

    works = load_default_corpus(progress=lambda done, total, name: say(f"parsed {done}/{total} {name}") if done % 50 == 0 or done == total else None)
    train = [to_sequence(w.name, w.notes, w.has_dynamics) for w in works if w.split == "train"]
    valid = [to_sequence(w.name, w.notes, w.has_dynamics) for w in works if w.split == "valid"]
    return train, valid, {"data": "music21 default corpus (piano, piano+others, string quartets, chorales)"}


def _share_weights(default_events: int, tune_events: int, share: float) -> tuple[float, float]:
    """Per-event weights of the default set and the tunes so that `share` of the windows are tunes."""
    if not 0.0 < share < 1.0:
        raise ImprovError(f"--folk-share must be between 0 and 1 (exclusive), got {share}")
    return (1.0 - share) / default_events, share / tune_events


def _tune_sequences(collections, say):
    """Training tunes of the tune collections, joined per file into medleys, and their held-out tunes."""
    from improv.data.tunes import load_tunes
    from improv.data.dataset import join_tunes, to_sequence

    train, valid = [], []
    for collection in collections:
        works = load_tunes(collection, progress=lambda done, total, name: say(f"parsed {done}/{total} {name}"))
        train += join_tunes([(w.name, w.notes) for w in works if w.split == "train"])
        valid += [to_sequence(w.name, w.notes, w.has_dynamics) for w in works if w.split == "valid"]
    return train, valid


def run(args: argparse.Namespace) -> int:
    from improv.cli.training_data import read_training_files
    from improv.data.dataset import split_works
    from improv.model.network import ModelConfig
    from improv.training.distributed import setup as setup_distributed
    from improv.training.train import train

    ddp = setup_distributed(args.device)  # under torchrun: this process's rank; only rank 0 prints

    def say(text: str) -> None:
        if ddp.is_main:
            print(text, file=sys.stderr, flush=True)

    if ddp.active:
        say(ddp.describe())
    if args.finetune is not None:
        return _finish(ddp, _finetune(args, say))
    if args.paths:
        works, skipped = read_training_files(args, ddp, say)
        if not works:
            raise ImprovError("no readable MIDI notes found in " + " ".join(map(str, args.paths)))
        train_seqs, valid_seqs = split_works(works)
        summary = {"data": f"{len(works)} user MIDI files", "skipped_files": skipped}
    guard = None
    weights = None
    if not args.paths:
        with ddp.local_main_first():  # one process per machine parses the corpus, the others read its cache
            train_seqs, valid_seqs, summary = _default_corpus_sequences(say)
            if not args.no_folk:
                from improv.data.tunes import TRAINING_COLLECTIONS

                tunes, guard = _tune_sequences(TRAINING_COLLECTIONS, say)
        if not args.no_folk:
            weights = _share_weights(sum(map(len, train_seqs)), sum(map(len, tunes)), args.folk_share)
            weights = [weights[0]] * len(train_seqs) + [weights[1]] * len(tunes)
            train_seqs = train_seqs + tunes
            summary["folk_share"] = args.folk_share
            summary["data"] += " + folk tunes (" + ", ".join(TRAINING_COLLECTIONS) + ")"
            summary["tune_collections"] = list(TRAINING_COLLECTIONS)
            say(f"the epoch kept is the best on the mean of the default held-out works and {len(guard)} held-out tunes")
    say(f"training on {sum(map(len, train_seqs))} events in {len(train_seqs)} works, "
        f"validating on {sum(map(len, valid_seqs))} events in {len(valid_seqs)} works")
    config = ModelConfig(hidden=args.hidden, layers=args.layers, dropout=args.dropout,
                         relative_pitch=args.relative_pitch, rhythm_grad=args.rhythm_grad,
                         rhythm_hidden=args.rhythm_hidden, lean_inputs=not args.full_inputs)
    init_state = None
    if args.init is not None:
        from improv.model.network import load, network_from

        net = network_from(load(args.init))
        config, init_state = net.config, net.state_dict()
        summary["initialised_from"] = str(args.init)
    settings = _settings(args, minutes=30.0, lr=3e-4) if args.init is not None else _settings(args, minutes=55.0, lr=2e-3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = train(train_seqs, valid_seqs, args.out, config, settings, run_dir=args.run_dir, resume=args.resume,
                   summary=summary, on_progress=say, init_state=init_state, guard_seqs=guard,
                   sample_weights=weights)
    say(f"wrote {args.out} (best epoch {result.best_epoch}: "
        + ", ".join(f"{h} {v:.3f}" for h, v in result.best_valid.items())
        + f" nats/event; {result.stopped_because}); curves in {args.out.with_suffix('.csv')} and .png")
    return _finish(ddp, 0)


def _finish(ddp, code: int) -> int:
    """Under torchrun: wait for every process, then leave the process group."""
    ddp.finish()
    return code


def _settings(args: argparse.Namespace, minutes: float, lr: float):
    """The command line's training settings; `minutes` and `lr` where it gives none (training anew and
    fine-tuning differ there)."""
    from improv.training.train import TrainSettings

    return TrainSettings(
        minutes=args.minutes if args.minutes is not None else minutes, epochs=args.epochs, batch=args.batch,
        length=args.length, lr=args.lr if args.lr is not None else lr, patience=args.patience,
        lr_patience=args.lr_patience, seed=args.random_seed, device=args.device, threads=args.threads,
        label_smoothing=getattr(args, "label_smoothing", 0.0), keep_epochs=getattr(args, "keep_epochs", False),
        calibrate=getattr(args, "calibrate", False),
    )


def _finetune(args: argparse.Namespace, say) -> int:
    """`improv train --finetune MODEL PATH...`: the player's own notes on top of MODEL."""
    from improv.cli.training_data import read_training_files
    from improv.data.dataset import split_works
    from improv.model.network import load, network_from
    from improv.training.distributed import setup as setup_distributed
    from improv.training.train import train

    if not args.paths:
        raise ImprovError("--finetune needs the files or folders to learn from, e.g. your saved sessions")
    base = load(args.finetune)
    ddp = setup_distributed(args.device)
    works, skipped = read_training_files(args, ddp, say, player_only=True)
    if not works:
        raise ImprovError("no readable MIDI notes found in " + " ".join(map(str, args.paths)))
    train_seqs, valid_seqs = split_works(works)
    guard = None
    if not args.no_guard:
        try:
            with ddp.local_main_first():
                _, guard, _ = _default_corpus_sequences(say)
        except ImprovError as error:
            raise ImprovError(f"{error}; or pass --no-guard to fine-tune without it") from None
    say(f"fine-tuning {args.finetune} on {sum(map(len, train_seqs))} events in {len(train_seqs)} files, "
        f"validating on {sum(map(len, valid_seqs))} events"
        + (f" and {sum(map(len, guard))} held-out corpus events" if guard else ""))
    net = network_from(base)
    settings = _settings(args, minutes=10.0, lr=3e-4)
    settings.calibrate = False  # the player's few held-out notes are too few to fit temperatures on
    summary = dict(base.summary)
    summary.update({"finetuned_from": str(args.finetune), "finetune_data": f"{len(works)} files",
                    "skipped_files": skipped})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = train(train_seqs, valid_seqs, args.out, net.config, settings, run_dir=args.run_dir, resume=args.resume,
                   summary=summary, on_progress=say, init_state=net.state_dict(), guard_seqs=guard)
    say(f"wrote {args.out} (best epoch {result.best_epoch}: "
        + ", ".join(f"{h} {v:.3f}" for h, v in result.best_valid.items())
        + " nats/event on your held-out files"
        + (f", {result.best_guard:.3f} summed on the corpus's" if result.best_guard is not None else "")
        + f"; {result.stopped_because})")
    return 0
