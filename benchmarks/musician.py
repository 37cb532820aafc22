"""Play improv as a musician would, over JACK, and measure how its answers fit the calls.

Usage: python benchmarks/musician.py [--repeat 3] [--gap 400] [--model FILE] [--json] [-- IMPROV FLAGS...]

Starts its own JACK server (dummy driver), runs `improv --headless --api jack --gap 400` as a user
would (its default flags otherwise), and plays a set of calls into its input from an outside client,
listening to its output from another. Per call (medians over `--repeat` takes, and the worst take):

- key fit: share of answer notes in the call's scale (the key it was written in, declared below);
- register offset: median answer pitch minus median call pitch (semitones); span: answer's highest
  minus lowest, and the call's;
- tempo ratio: the answer's median interval between onsets over the call's (onsets within 35 ms are
  one chord);
- first-note leap: semitones from the call's last onset (its nearest pitch) to the answer's first note;
- motif echo: share of the call's consecutive interval pairs (of its top line: the highest pitch per
  onset) found again in the answer's top line, transposed anywhere (as played, not inverted);
- largest chord: most notes the answer strikes at one onset; notes answered;
- latency: the answer's first note-on after the call's last note-off, minus the gap (ms);
- dynamics: the calls are played at a steady velocity 90; "vel off" is the answer's velocity farthest
  from it, "vel jump" the largest change from one answer note to the next.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

warnings.filterwarnings("ignore", category=DeprecationWarning)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # JACK helpers: test support

from support.jack_server import JackServer  # noqa: E402
from support.live import improv_process, keyboard, listener, note_ons  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHORD_S = 0.035
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}


@dataclass(frozen=True)
class CallSpec:
    name: str
    key: tuple[int, str]  # (root pitch class, mode): the key the call is written in
    notes: tuple[tuple[float, float, int], ...]  # (onset s, duration s, pitch)


def line(pitches: list[int], step_s: float, hold: float = 0.85, swing: float = 0.0) -> list[tuple[float, float, int]]:
    out, t = [], 0.0
    for i, p in enumerate(pitches):
        step = step_s * (1 + swing if i % 2 == 0 else 1 - swing)
        out.append((t, step_s * hold, p))
        t += step
    return out


def calls() -> list[CallSpec]:
    scale = [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62, 60]
    blues = [57, 60, 62, 63, 64, 67, 69, 67, 64, 62, 60, 57, 60, 57]
    beat = 60 / 90
    chords = [(60, 64, 67, 72), (57, 60, 64, 69), (53, 57, 60, 65), (55, 59, 62, 67)]
    block = [(i * 2 * beat, 2 * beat * 0.92, p) for i, chord in enumerate(chords) for p in chord]
    motif = [67, 69, 71, 67, 74, 71, 67]  # G A B G D B G
    motif_times = [0.0, 0.2, 0.4, 0.6, 0.8, 1.2, 1.4]
    folk = [(bar * 1.8 + t, 0.17, p) for bar in range(4) for t, p in zip(motif_times, motif)]
    fast = [64, 66, 67, 69, 71, 72, 71, 69, 67, 66, 64, 62, 64, 66, 67, 71]
    two_beat = 60 / 100
    bass = [48, 43, 45, 41]
    melody = [72, 74, 76, 72, 77, 76, 74, 72, 71, 72, 74, 76, 74, 72, 71, 67]
    hands = [(i * 2 * two_beat, 2 * two_beat * 0.95, p) for i, p in enumerate(bass)]
    hands += [(i * two_beat / 2, two_beat / 2 * 0.85, p) for i, p in enumerate(melody)]
    return [
        CallSpec("scale melody", (0, "major"), tuple(line(scale, 0.3))),
        CallSpec("minor blues riff", (9, "minor"), tuple(line(blues, 0.25, swing=0.2))),
        CallSpec("block chords", (0, "major"), tuple(block)),
        CallSpec("repeated motif", (7, "major"), tuple(folk)),
        CallSpec("fast line", (4, "minor"), tuple(line(fast, 0.125))),
        CallSpec("two hands", (0, "major"), tuple(sorted(hands))),
    ]


def onsets(notes: list[tuple[float, int]]) -> list[tuple[float, list[int]]]:
    out: list[tuple[float, list[int]]] = []
    for t, p in sorted(notes):
        if out and t - out[-1][0] <= CHORD_S:
            out[-1][1].append(p)
        else:
            out.append((t, [p]))
    return out


def median_ioi(grouped: list[tuple[float, list[int]]]) -> float:
    times = [t for t, _ in grouped]
    return statistics.median(b - a for a, b in zip(times, times[1:])) if len(times) > 1 else float("nan")


def pairs(top: list[int]) -> list[tuple[int, int]]:
    steps = [b - a for a, b in zip(top, top[1:])]
    return list(zip(steps, steps[1:]))


CALL_VELOCITY = 90


def measure(spec: CallSpec, answer: list[tuple[float, int]], call_end: float, gap_s: float,
            velocities: list[int]) -> dict:
    call = onsets([(t, p) for t, _, p in spec.notes])
    heard = onsets(answer)
    pitches = [p for _, p in answer]
    call_pitches = [p for _, _, p in spec.notes]
    scale = {(spec.key[0] + s) % 12 for s in SCALES[spec.key[1]]}
    call_pairs = pairs([max(ps) for _, ps in call])
    answer_pairs = set(pairs([max(ps) for _, ps in heard]))
    return {
        "key_fit": sum(p % 12 in scale for p in pitches) / len(pitches),
        "register": statistics.median(pitches) - statistics.median(call_pitches),
        "span": max(pitches) - min(pitches),
        "call_span": max(call_pitches) - min(call_pitches),
        "tempo": median_ioi(heard) / median_ioi(call),
        "leap": min(abs(answer[0][1] - p) for p in call[-1][1]),
        "echo": sum(pair in answer_pairs for pair in call_pairs) / len(call_pairs) if call_pairs else float("nan"),
        "chord": max(len(ps) for _, ps in heard),
        "call_chord": max(len(ps) for _, ps in call),
        "notes": len(answer),
        "call_notes": len(spec.notes),
        "latency_ms": (answer[0][0] - call_end - gap_s) * 1000,
        "vel_off": max(abs(v - CALL_VELOCITY) for v in velocities),
        "vel_jump": max((abs(b - a) for a, b in zip(velocities, velocities[1:])), default=0),
    }


def play_call(keys, spec: CallSpec) -> float:
    """Send the call on time; returns when its last note-off went (monotonic s)."""
    messages = sorted([(t, 1, p) for t, _, p in spec.notes] + [(t + d, 0, p) for t, d, p in spec.notes])
    start = time.monotonic() + 0.05
    last = start
    for t, on, pitch in messages:
        while (wait := start + t - time.monotonic()) > 0:
            time.sleep(min(wait, 0.002) if wait < 0.01 else wait - 0.005)
        keys.send(0x90 if on else 0x80, pitch, CALL_VELOCITY if on else 0)
        last = time.monotonic()
    return last


def run(args: argparse.Namespace) -> list[dict]:
    results = []
    model = args.model or ROOT / "models" / "improv-default.pt"
    with JackServer() as server, improv_process(server, model, "--gap", str(args.gap), *args.improv) as improv:
        with keyboard() as keys, listener() as recorder:
            time.sleep(0.5)
            for take in range(args.repeat):
                for spec in calls():
                    recorder.clear()
                    call_end = play_call(keys, spec)
                    improv.wait_line(r"^reply ", 60)
                    time.sleep(0.3)
                    heard = [m for m in note_ons(recorder.messages) if m.time_s > call_end]
                    answer = [(m.time_s, m.data[1]) for m in heard]
                    if not answer:
                        results.append({"call": spec.name, "take": take, "notes": 0})
                        continue
                    results.append({"call": spec.name, "take": take, **measure(spec, answer, call_end, args.gap / 1000,
                                                                              [m.data[2] for m in heard])})
                    time.sleep(0.5)
    return results


COLUMNS = (("key_fit", "key fit", ".2f"), ("register", "register", "+.1f"), ("span", "span", ".0f"),
           ("call_span", "(call)", ".0f"), ("tempo", "tempo", ".2f"), ("leap", "1st leap", ".0f"),
           ("echo", "echo", ".2f"), ("chord", "chord", ".0f"), ("notes", "notes", ".0f"),
           ("latency_ms", "lat ms", ".1f"), ("vel_off", "vel off", ".0f"), ("vel_jump", "vel jump", ".0f"))
WORST = {"key_fit": min, "register": lambda v: max(v, key=abs), "span": max, "call_span": max,
         "tempo": lambda v: max(v, key=lambda x: abs(__import__("math").log(x))), "leap": max, "echo": min,
         "chord": max, "notes": min, "latency_ms": max, "vel_off": max, "vel_jump": max}


def table(results: list[dict]) -> str:
    names = list(dict.fromkeys(r["call"] for r in results))
    lines = [f"{'call':<18}{'':>7}" + "".join(f"{title:>10}" for _, title, _ in COLUMNS)]
    medians: dict[str, list[float]] = {k: [] for k, _, _ in COLUMNS}
    for name in names:
        takes = [r for r in results if r["call"] == name and r.get("notes")]
        for label, pick in (("median", statistics.median), ("worst", None)):
            cells = []
            for key, _, fmt in COLUMNS:
                values = [t[key] for t in takes if key in t]  # runs saved before a column was added lack it
                if not values:
                    cells.append(f"{'-':>10}")
                    continue
                value = pick(values) if pick else WORST[key](values)
                if pick:
                    medians[key].append(value)
                cells.append(f"{format(value, fmt):>10}")
            lines.append(f"{name if label == 'median' else '':<18}{label:>7}" + "".join(cells))
    lines.append(f"{'over the calls':<18}{'median':>7}"
                 + "".join(f"{format(statistics.median(medians[k]), fmt) if medians[k] else '-':>10}"
                           for k, _, fmt in COLUMNS))
    lines.append(f"{'':<18}{'|reg|':>7}{'':>10}{statistics.median(abs(v) for v in medians['register']):>10.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="takes per call (default 1)")
    parser.add_argument("--gap", type=float, default=400, help="improv's --gap in ms (default 400)")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--load", type=Path, default=None, help="print the table of a run saved with --json")
    parser.add_argument("improv", nargs="*", help="more improv flags, after --")
    args = parser.parse_args(argv)
    results = json.loads(args.load.read_text()) if args.load else run(args)
    if args.json:
        print(json.dumps(results))
    else:
        print(f"improv --headless --api jack --gap {args.gap:g} {' '.join(args.improv)}; {args.repeat} take(s) per call")
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
