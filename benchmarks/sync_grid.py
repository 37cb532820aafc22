"""How far answers land from a band's grid: under MIDI clock that loses pulses, and under Ableton Link.

Usage: python benchmarks/sync_grid.py [--runs 10] [--answers 10] [--case clock|lossy|link|all]

Cases (each run is one improv process answering `--answers` phrases; errors are per answer note,
as an outside JACK client hears it, against the band's grid):
- clock: `--sync clock --quantize 1/16` at 120 BPM, every pulse delivered (the baseline);
- lossy: the same, with one pulse in 30 lost at random on the way to improv;
- link: `--sync link --quantize 1/8` with a Link peer at 100 BPM (inside a private network
  namespace: the benchmark re-runs itself under `unshare -n ../shared/netns.sh`).
Prints a plain table: case, runs, notes, median and p99 of the grid error (ms), worst run's p99.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore", category=DeprecationWarning)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.jack_server import JackServer  # noqa: E402
from support.live import improv_process, keyboard  # noqa: E402
from support.netns import INSIDE_ENV, assert_private_network, netns_script  # noqa: E402

from improv.model.shipped import default_model_path  # noqa: E402


def clock_run(server: JackServer, answers: int, drop_one_in: int | None, seed: int) -> list[list[float]]:
    from test_live_sync import band, grid_error_s, grid_line, improv_note_on_times, pulse_times

    args = ("--sync", "clock", "--quantize", "1/16", "--gap", "300", "--reply-notes", "6",
            "--random-seed", str(seed))
    per_answer = []
    with improv_process(server, default_model_path(), *args) as improv, \
            band(120.0, drop_one_in=drop_one_in) as (_, recorder):
        time.sleep(1.0)
        with keyboard() as keys:
            for k in range(answers):
                start = recorder.messages[-1].jack_s
                keys.phrase([60 + k, 64, 67], step_s=0.15, hold_s=0.1)
                improv.wait_line(r"^reply", 20)
                time.sleep(0.1)
                origin, pulse_s = grid_line(pulse_times(recorder))
                per_answer.append([grid_error_s(t, origin, pulse_s, 6) * 1000
                                   for t in improv_note_on_times(recorder, after=start)])
    return per_answer


def link_run(server: JackServer, answers: int, seed: int) -> list[list[float]]:
    from support.jack_server import MidiRecorder, connect_ports, open_midi_in, open_midi_out, open_virtual, \
        unique_client_name, wait_for_port
    from support.live import IMPROV_OUT, note_ons
    from test_live_link import Peer, grid_errors_ms, jack_minus_monotonic

    args = ("--sync", "link", "--quantize", "1/8", "--gap", "300", "--reply-notes", "8", "--random-seed", str(seed))
    spans = []
    with MidiRecorder() as recorder, open_midi_out(unique_client_name("metronome")) as metronome:
        connect_ports(open_virtual(metronome, "out"), recorder.port)
        peer = Peer(100.0, metronome)
        try:
            peer.start_metronome()
            with improv_process(server, default_model_path(), *args) as improv:
                improv.wait_line(r"^link: 1 peer$", 5)
                with open_midi_in(unique_client_name("probe")) as probe:
                    connect_ports(wait_for_port(probe, IMPROV_OUT, 5.0), recorder.port)
                with keyboard() as keys:
                    for k in range(answers):
                        keys.phrase([60 + k, 64, 67], step_s=0.15, hold_s=0.1)
                        start = time.monotonic()
                        improv.wait_line(r"^reply", 20)
                        time.sleep(0.1)
                        spans.append((start, time.monotonic()))
            state = peer.state()
            offset = jack_minus_monotonic(recorder, peer)
            messages = recorder.messages
        finally:
            peer.close()
    return [grid_errors_ms([m.jack_s - offset for m in note_ons(messages) if a < m.jack_s - offset < b],
                           state, peer, 100.0) for a, b in spans]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--answers", type=int, default=10)
    parser.add_argument("--case", choices=("clock", "lossy", "link", "all"), default="all")
    args = parser.parse_args()
    cases = ["clock", "lossy", "link"] if args.case == "all" else [args.case]
    if "link" in cases and os.environ.get(INSIDE_ENV) != "1":
        env = dict(os.environ, **{INSIDE_ENV: "1"})
        command = ["unshare", "-n", "bash", str(netns_script()), sys.executable, *sys.argv]
        return subprocess.run(command, env=env).returncode
    if "link" in cases:
        assert_private_network()
    print(f"{'case':<8}{'runs':>6}{'notes':>7}{'p50 ms':>9}{'p99 ms':>9}{'worst run p99':>15}{'worst answer p99':>18}")
    with JackServer(period_frames=32) as server:
        for case in cases:
            runs = []
            for seed in range(args.runs):
                if case == "link":
                    runs.append(link_run(server, args.answers, seed))
                else:
                    runs.append(clock_run(server, args.answers, 30 if case == "lossy" else None, seed))
            notes = [e for run in runs for answer in run for e in answer]
            run_p99 = [float(np.percentile([e for a in run for e in a], 99)) for run in runs]
            answer_p99 = [float(np.percentile(a, 99)) for run in runs for a in run if a]
            print(f"{case:<8}{len(runs):>6}{len(notes):>7}{np.median(notes):>9.2f}{np.percentile(notes, 99):>9.2f}"
                  f"{max(run_p99):>15.2f}{max(answer_p99):>18.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
