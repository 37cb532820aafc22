"""Live latency of improv over a JACK dummy server, against the JACK floor measured in the same run.

Usage: python benchmarks/live_latency.py [--phrases 50] [--model FILE] [--follow W] [--json]

Starts its own JACK server (dummy driver, 48 kHz, 128-frame periods unless --period-frames) and reports:
- start: seconds from launching `improv --headless --api jack` until its ports exist, and its RSS
  (in all, and without the JACK server's shared memory segment, which every JACK client maps and
  which is the server's memory: the target is for improv's own);
- floor: keyboard -> echo client -> listener, the same two JACK hops improv's answer takes;
- first reply: last note-off sent -> first answer note-on received, minus the gap;
- timing error: when each answer note went out vs when the engine scheduled it (answer notes only:
  the --thru echoes go out the moment they arrive and cannot be late);
- flood: note-ons lost (not echoed by --thru) or stuck under a 10,000 msg/s input flood.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=DeprecationWarning)

import rtmidi  # noqa: E402

# The JACK server helpers are test support, kept under tests/ so the wheel carries none of it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.memory import rss_mb  # noqa: E402
from support.jack_server import (  # noqa: E402
    JackServer,
    MidiRecorder,
    connect_ports,
    open_midi_in,
    open_midi_out,
    open_virtual,
    unique_client_name,
    wait_for_port,
)

GAP_MS = 300
PHRASE = (60, 64, 67)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]



def measure_start(server: JackServer, model: Path | None) -> tuple[float, tuple[float, float], subprocess.Popen]:
    """Launch improv as a user would and time it until both ports exist."""
    cmd = [sys.executable, "-m", "improv", "--headless", "--api", "jack", "--gap", str(GAP_MS)]
    if model:
        cmd += ["--model", str(model)]
    with open_midi_in(unique_client_name("probe-in")) as probe_in, open_midi_out(unique_client_name("probe-out")) as probe_out:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=server.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(probe_out, r"^improv(-\d+)?:in$", 30)
        wait_for_port(probe_in, r"^improv(-\d+)?:out$", 30)
        elapsed = time.monotonic() - started
    time.sleep(0.5)
    return elapsed, rss_mb(proc.pid), proc


def torch_floor_mb() -> float:
    """RSS of a Python that has only imported torch: what any torch-based instrument pays."""
    out = subprocess.run([sys.executable, "-W", "ignore", "-c",
                          "import torch; print(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1])"],
                         capture_output=True, text=True, check=True).stdout
    return int(out) / 1024


def measure_floor(n: int) -> list[float]:
    """Two JACK hops through a client that echoes in its callback: what any MIDI processor costs."""
    with open_midi_in(unique_client_name("echo-in")) as echo_in, open_midi_out(unique_client_name("echo-out")) as echo_out:
        echo_in_port = open_virtual(echo_in, "in")
        echo_out_port = open_virtual(echo_out, "out")
        echo_in.set_callback(lambda event, data=None: echo_out.send_message(event[0]))
        with MidiRecorder() as recorder, open_midi_out(unique_client_name("keys")) as keys:
            keys_port = open_virtual(keys, "out")
            connect_ports(keys_port, echo_in_port)
            connect_ports(echo_out_port, recorder.port)
            out = []
            for i in range(n):
                recorder.clear()
                sent = time.monotonic()
                keys.send_message([0x90, 60, 1 + i % 100])
                got = recorder.wait_for_count(1, 2.0)
                out.append(got[0].time_s - sent)
                keys.send_message([0x80, 60, 0])
                time.sleep(0.01)
            return out


def measure_replies(model: Path | None, phrases: int, follow: float = 0.0) -> dict:
    """In-process session (so the scheduler's own timing records can be read), played from outside."""
    from improv.cli import build_parser
    from improv.live.session import LiveSession

    argv = ["--api", "jack", "--gap", str(GAP_MS), "--reply-notes", "8", "--random-seed", "1", "--thru",
            "--config", str(Path(tempfile.mkdtemp()) / "config.toml"),  # defaults, not the user's mappings
            "--follow", str(follow)]
    if model:
        argv += ["--model", str(model)]
    session = LiveSession(build_parser().parse_args(argv))
    first_reply = []
    with session:
        session.start()
        with MidiRecorder() as recorder, open_midi_out(unique_client_name("keys")) as keys:
            keys_port = open_virtual(keys, "out")
            connect_ports(keys_port, session.input.port_name)
            connect_ports(session.output.port_name, recorder.port)
            for _ in range(phrases):
                recorder.clear()
                for i, pitch in enumerate(PHRASE):
                    if i:
                        time.sleep(0.02)
                    keys.send_message([0x90, pitch, 80])
                    time.sleep(0.06)
                    keys.send_message([0x80, pitch, 0])
                released = time.monotonic()
                echoed = len(PHRASE)

                def answered(messages: list) -> bool:
                    ons = [m for m in messages if m.data[0] & 0xF0 == 0x90 and m.data[2] > 0]
                    return len(ons) > echoed

                got = recorder.wait_for(answered, 5.0)
                ons = [m for m in got if m.data[0] & 0xF0 == 0x90 and m.data[2] > 0]
                first_reply.append(ons[echoed].time_s - released - GAP_MS / 1000)
                deadline = time.monotonic() + 10
                while session.engine.output.busy("reply") and time.monotonic() < deadline:
                    time.sleep(0.02)
                time.sleep(0.05)
            late = list(session.engine.output.late_s)
            flood = flood_test(session, keys, recorder)
    return {"first_reply_s": first_reply, "late_s": late, **flood}


def flood_test(session, keys: rtmidi.MidiOut, recorder: MidiRecorder) -> dict:
    """10,000 msg/s for two seconds: CCs, pitch bend and clock, with a note pair every 10 ms."""
    rng = random.Random(1)
    session.engine.command("pause", True)  # only --thru echoes: every note-on must come back
    time.sleep(0.1)
    recorder.clear()
    sent_notes = 0
    start = time.monotonic()
    i = 0
    # Bursts of 10 messages every millisecond, sleeping in between: a busy loop here would hold
    # the GIL that improv's input callback (same process) needs, and measure this script instead.
    while time.monotonic() - start < 2.0:
        for _ in range(10):
            i += 1
            if i % 100 == 0:
                pitch = 36 + (i // 100) % 48
                keys.send_message([0x90, pitch, 90])
                keys.send_message([0x80, pitch, 0])
                sent_notes += 1
            else:
                keys.send_message(rng.choice(([0xB0, 7, rng.randrange(128)], [0xE0, 0, rng.randrange(128)], [0xF8])))
        time.sleep(max(start + i / 10_000 - time.monotonic(), 0.0))
    rate = i / (time.monotonic() - start)
    time.sleep(1.0)
    got = recorder.messages
    ons = sum(1 for m in got if m.data[0] & 0xF0 == 0x90 and m.data[2] > 0)
    sounding: dict[int, int] = {}  # per key: note-ons minus note-offs
    for m in got:
        kind, key = m.data[0] & 0xF0, m.data[1] if len(m.data) > 1 else -1
        if kind == 0x90 and m.data[2] > 0:
            sounding[key] = sounding.get(key, 0) + 1
        elif kind == 0x80 or kind == 0x90:
            sounding[key] = sounding.get(key, 0) - 1
    return {"flood_rate": rate, "flood_notes_sent": sent_notes, "flood_lost": sent_notes - ons,
            "flood_stuck": sum(1 for n in sounding.values() if n > 0), "dropped_input": session.engine.dropped_input}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phrases", type=int, default=50)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--follow", type=float, default=0.0, help="answers follow the session this much (0-1)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--period-frames", type=int, default=128,
                        help="the JACK server's period at 48 kHz (default 128, 2.7 ms; each hop waits up to one)")
    args = parser.parse_args(argv)
    with JackServer(period_frames=args.period_frames) as server:
        os.environ.update(server.env())
        start_s, rss, proc = measure_start(server, args.model)
        torch_mb = torch_floor_mb()
        proc.terminate()
        proc.wait(10)
        floor = measure_floor(args.phrases)
        replies = measure_replies(args.model, args.phrases, args.follow)
    floor_p50 = statistics.median(floor)
    first = replies["first_reply_s"]
    late = replies["late_s"]
    result = {
        "start_s": start_s,
        "rss_mb": rss[0],
        "rss_jack_shm_mb": rss[1],
        "rss_own_mb": rss[0] - rss[1],
        "rss_torch_only_mb": torch_mb,
        "floor_ms": {"p50": floor_p50 * 1e3, "p99": pct(floor, 99) * 1e3, "n": len(floor)},
        "first_reply_ms": {"p50": statistics.median(first) * 1e3, "p99": pct(first, 99) * 1e3, "n": len(first)},
        "beyond_floor_ms": {"p50": (statistics.median(first) - floor_p50) * 1e3, "p99": (pct(first, 99) - floor_p50) * 1e3},
        "timing_error_ms": {"p50": statistics.median(late) * 1e3, "p99": pct(late, 99) * 1e3, "n": len(late)},
        "flood": {k: replies[k] for k in ("flood_rate", "flood_notes_sent", "flood_lost", "flood_stuck", "dropped_input")},
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{'case':<36}{'n':>6}{'p50':>10}{'p99':>10}  target")
    print(f"{'start until ports open (s)':<36}{1:>6}{start_s:>10.2f}{'':>10}  <= 2 s")
    print(f"{'RSS after start (MB)':<36}{1:>6}{rss[0]:>10.0f}")
    print(f"{'  of it JACK server shared mem (MB)':<36}{1:>6}{rss[1]:>10.0f}")
    print(f"{'  improv own: RSS - JACK shm (MB)':<36}{1:>6}{rss[0] - rss[1]:>10.0f}{'':>10}  <= 350 MB")
    print(f"{'  baseline: python + import torch':<36}{1:>6}{torch_mb:>10.0f}{'':>10}  "
          f"improv own / baseline {(rss[0] - rss[1]) / torch_mb:.2f}")
    print(f"{'JACK floor, 2 hops (ms)':<36}{len(floor):>6}{floor_p50 * 1e3:>10.2f}{pct(floor, 99) * 1e3:>10.2f}")
    print(f"{'first reply note - gap (ms)':<36}{len(first):>6}{statistics.median(first) * 1e3:>10.2f}{pct(first, 99) * 1e3:>10.2f}")
    b = result["beyond_floor_ms"]
    print(f"{'  beyond the floor (ms)':<36}{len(first):>6}{b['p50']:>10.2f}{b['p99']:>10.2f}  <= 5 ms")
    print(f"{'output timing error (ms)':<36}{len(late):>6}{statistics.median(late) * 1e3:>10.3f}{pct(late, 99) * 1e3:>10.3f}  p99 <= 1 ms")
    f = result["flood"]
    print(f"flood {f['flood_rate']:.0f} msg/s: {f['flood_notes_sent']} notes sent, {f['flood_lost']} lost, "
          f"{f['flood_stuck']} stuck, {f['dropped_input']} dropped by the input queue")
    return 0


if __name__ == "__main__":
    sys.exit(main())
