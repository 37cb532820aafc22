"""`improv ports`: list the MIDI ports improv can use."""

from __future__ import annotations

import argparse

from improv.midi.ports import API_CHOICES, API_ENV, list_ports


def add_api_argument(parser: argparse.ArgumentParser, default: object = None) -> None:
    parser.add_argument(
        "--api",
        choices=API_CHOICES,
        default=default,
        help=f"MIDI API (default: ${API_ENV}, else auto: ALSA on Linux, CoreMIDI on macOS, WinMM on Windows)",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ports", help="list MIDI ports",
        description="List the MIDI ports improv can listen to (inputs, for --in) and play to (outputs, for --out).",
    )
    # SUPPRESS: an --api given before the command ("improv --api jack ports") stays in force.
    add_api_argument(p, default=argparse.SUPPRESS)
    p.set_defaults(handler=run_ports)


def format_ports(inputs: list[str], outputs: list[str]) -> str:
    lines = []
    for heading, names in (("inputs:", inputs), ("outputs:", outputs)):
        lines.append(heading)
        lines.extend(f"  {name}" for name in names or ["(none)"])
    return "\n".join(lines)


def run_ports(args: argparse.Namespace) -> int:
    print(format_ports(*list_ports(getattr(args, "api", None))))
    return 0
