"""CPU cost of the built-in synth per second of audio, for 1, 8 and 32 held notes, and its buffer latency.

Usage: python benchmarks/synth.py [--soundfont FILE] [--repeats N] [--json]

Each repeat strikes N notes (alternating improv's two default programs, piano
and electric piano), holds them and renders the first second of 44.1 kHz
stereo audio in 4096-frame reads from the memory driver: the synthesis
FluidSynth's audio thread runs live, without a sound card. `cpu %` is the
median render time per second of audio as a share of one core; `per note`
divides it by the notes held; `voices` is FluidSynth's count 93 ms after a
strike (a piano note uses several). "dry" turns reverb and chorus off. If
`tinysoundfont` is importable (`pip install --no-deps tinysoundfont`: its
pyaudio dependency does not build without PortAudio headers), it is measured
in the same process as the alternative issue 8 compared. Last, two seconds of
live play through FluidSynth's own audio thread (the file driver, paced like a
sound card) give the CPU use of the whole process while playing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from improv.sound.soundfont import find_soundfont
from improv.sound.synth import (
    DEFAULT_BUFFER_FRAMES,
    DEFAULT_SAMPLE_RATE,
    IMPROV_PROGRAM,
    MEMORY_DRIVER,
    PLAYER_PROGRAM,
    Synth,
    buffer_latency_ms,
    buffer_periods,
)

SR = DEFAULT_SAMPLE_RATE
BLOCK = 4096
NOTES = (1, 8, 32)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def pitches(n: int) -> list[int]:
    return [36 + (i * 5) % 60 + i // 12 for i in range(n)]


@dataclass
class Case:
    strike: Callable[[], None]  # (re)strike the held notes
    render: Callable[[int], object]  # render this many frames
    voices: Callable[[], int]  # voices sounding, -1 if unknown


def fluidsynth_case(soundfont: Path, notes: int, effects: bool) -> Case:
    synth = Synth(soundfont, audio_driver=MEMORY_DRIVER, effects=effects)

    def strike() -> None:
        for i, pitch in enumerate(pitches(notes)):
            synth.send([0x80 | (i % 2), pitch, 0])
            synth.send([0x90 | (i % 2), pitch, 100])  # channel 0 piano, channel 1 electric piano

    return Case(strike, synth.read, synth.active_voices)


def tinysoundfont_case(soundfont: Path, notes: int) -> Case | None:
    try:
        import tinysoundfont
    except ImportError:
        return None
    synth = tinysoundfont.Synth(samplerate=SR)
    sfid = synth.sfload(str(soundfont))
    synth.program_select(0, sfid, 0, PLAYER_PROGRAM)
    synth.program_select(1, sfid, 0, IMPROV_PROGRAM)

    def strike() -> None:
        for i, pitch in enumerate(pitches(notes)):
            synth.noteoff(i % 2, pitch)
            synth.noteon(i % 2, pitch, 100)

    return Case(strike, synth.generate, lambda: -1)


def measure(case: Case, repeats: int) -> tuple[list[float], int]:
    """Seconds of CPU per second of audio, and the voices sounding one block (93 ms) after a strike."""
    blocks = SR // BLOCK
    case.strike()
    case.render(SR)  # warm-up: samples paged in
    times = []
    for _ in range(repeats):
        case.strike()
        start = time.perf_counter()
        for _ in range(blocks):
            case.render(BLOCK)
        times.append((time.perf_counter() - start) * SR / (blocks * BLOCK))
    case.strike()
    case.render(BLOCK)
    return times, case.voices()


def live_cpu_percent(soundfont: Path, notes: int, seconds: float = 2.0) -> float:
    """Process CPU (all threads) while FluidSynth's own audio thread plays `notes` notes in real time.

    The file driver paces itself like a sound card and writes a WAV, so this
    runs without one; the notes are struck again every half second.
    """
    with tempfile.TemporaryDirectory() as folder:
        synth = Synth(soundfont, audio_driver="file", audio_file=Path(folder) / "live.wav")
        try:
            start_cpu, start = time.process_time(), time.perf_counter()
            while time.perf_counter() - start < seconds:
                for i, pitch in enumerate(pitches(notes)):
                    synth.send([0x80 | (i % 2), pitch, 0])
                    synth.send([0x90 | (i % 2), pitch, 100])
                time.sleep(0.5)
            return 100 * (time.process_time() - start_cpu) / (time.perf_counter() - start)
        finally:
            synth.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soundfont", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    soundfont = find_soundfont(args.soundfont)

    rows: list[dict] = []
    baseline: float | None = None
    for notes in NOTES:
        cases: list[tuple[str, Case | None]] = [
            ("fluidsynth", fluidsynth_case(soundfont, notes, effects=True)),
            ("fluidsynth dry", fluidsynth_case(soundfont, notes, effects=False)),
            ("tinysoundfont", tinysoundfont_case(soundfont, notes)),
        ]
        for name, case in cases:
            if case is None:
                continue
            times, voices = measure(case, args.repeats)
            median = statistics.median(times)
            if baseline is None:
                baseline = median
            rows.append({
                "case": f"{name}, {notes} notes", "n": args.repeats, "voices": voices,
                "median_ms": 1000 * median, "p99_ms": 1000 * percentile(times, 99),
                "cpu_percent": 100 * median, "per_note_percent": 100 * median / notes, "ratio": median / baseline,
            })
    period, periods = buffer_periods(DEFAULT_BUFFER_FRAMES)
    latency = {
        "buffer_frames": DEFAULT_BUFFER_FRAMES, "periods": periods, "period_frames": period,
        "sample_rate": SR, "latency_ms": buffer_latency_ms(DEFAULT_BUFFER_FRAMES, SR),
    }
    live = {notes: live_cpu_percent(soundfont, notes) for notes in (8,)}
    if args.json:
        print(json.dumps({"soundfont": str(soundfont), "rows": rows, "latency": latency, "live_cpu_percent": live},
                         indent=2))
        return 0
    print(f"SoundFont {soundfont}; render time per second of {SR} Hz stereo audio")
    print(f"{'case':28} {'n':>3} {'voices':>6} {'median ms':>10} {'p99 ms':>8} {'cpu %':>6} {'per note %':>10} {'ratio':>6}")
    for row in rows:
        shown = "?" if row["voices"] < 0 else str(row["voices"])
        print(f"{row['case']:28} {row['n']:3d} {shown:>6} {row['median_ms']:10.2f} {row['p99_ms']:8.2f} "
              f"{row['cpu_percent']:6.2f} {row['per_note_percent']:10.3f} {row['ratio']:6.2f}")
    print(f"default audio buffer: {DEFAULT_BUFFER_FRAMES} frames ({periods} periods of {period}) at {SR} Hz "
          f"= {latency['latency_ms']:.1f} ms output latency")
    for frames in (256, 1024, 2048):
        print(f"  --audio-buffer {frames}: {buffer_latency_ms(frames, SR):.1f} ms")
    for notes, percent in live.items():
        print(f"playing live ({notes} notes struck every 0.5 s, FluidSynth's audio thread, file driver): "
              f"{percent:.1f} % of one core for the whole process")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
