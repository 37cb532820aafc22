"""The `improv` command: parse arguments, wire the parts together, report errors in one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from improv import __version__
from improv.cli import play
from improv.cli import models as models_cli
from improv.cli import ports as ports_cli
from improv.cli import render as render_cli
from improv.cli import train as training_cli
from improv.errors import ImprovError

EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="improv",
        description="A real-time MIDI improvisation instrument: play a phrase, an LSTM answers.",
    )
    parser.add_argument("--version", action="version", version=f"improv {__version__}")
    play.add_live_arguments(parser)
    parser.set_defaults(handler=None)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    training_cli.add_parser(subparsers)
    models_cli.add_generate_parser(subparsers)
    models_cli.add_evaluate_parser(subparsers)
    ports_cli.add_parser(subparsers)
    render_cli.add_parser(subparsers)
    play.add_learn_parser(subparsers)
    return parser


def _run_tui(args: argparse.Namespace) -> int:
    from improv.tui import run_tui  # imports Textual only when the screen is wanted

    return run_tui(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler or (play.run_headless if args.headless else _run_tui)
    try:
        return handler(args)
    except ImprovError as error:
        print(f"improv: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
