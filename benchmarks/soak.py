"""Hours at the keyboard: a long call or duet session over JACK, and whether anything hung.

Usage: python benchmarks/soak.py [--seconds 3600] [--mode duet|call] [--model FILE] [--every 60]

Starts its own JACK server (dummy driver) and plays at `improv --headless --api jack --thru` as a restless
player would: random phrases in several keys, chords, the sustain pedal, 200-byte sysex, program changes,
MIDI clock at 120 BPM, and the player's input port unplugged and plugged in again every minute. An outside
client listens to improv's output. Prints RSS (without the JACK server's shared memory) over time, notes in
and out, answers, every key struck again while it still sounded, and every note left sounding after SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.jack_server import JackServer  # noqa: E402
from support.soak import run_soak, summary  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3600.0)
    parser.add_argument("--mode", choices=("duet", "call"), default="duet")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--every", type=float, default=60.0, help="seconds between RSS lines (default 60)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with JackServer() as server:
        result = run_soak(server, args.seconds, mode=args.mode, model=args.model, report_every_s=args.every,
                          seed=args.seed, say=lambda line: print(line, flush=True))
    print(summary(result))
    ok = not result.heard.restrikes and not result.heard.sounding and result.exit_code in (0, 130, 143)
    if result.stderr_tail and not ok:
        print(result.stderr_tail)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
