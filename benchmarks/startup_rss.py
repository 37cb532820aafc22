"""Memory at start: improv's resident set once it is ready to play, per mode, against a bare torch import.

Usage: python benchmarks/startup_rss.py [--runs 3] [--model FILE]

Starts its own JACK server (dummy driver) and, for each mode, launches improv as a user would, waits until its
ports exist (and, for the screen, until the screen is drawn in tmux), waits 1 s and reads /proc/PID/smaps:
- rss: everything resident;
- jack shm: of that, the JACK server's shared memory, which every JACK client maps and which is the server's;
- own: rss minus jack shm, what improv itself holds (the goal is <= 350 MB);
- baseline: a Python that has only imported torch, measured in the same run (ratio = own / baseline).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.memory import rss_mb  # noqa: E402
from support.jack_server import JackServer, open_midi_in, unique_client_name, wait_for_port  # noqa: E402

GOAL_MB = 350



def baseline_mb() -> float:
    code = "import torch, time; print('ready', flush=True); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-W", "ignore", "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        return rss_mb(proc.pid)[0]
    finally:
        proc.kill()
        proc.wait()


def _wait_for_out_port(timeout_s: float = 60) -> None:
    with open_midi_in(unique_client_name("probe")) as probe:
        wait_for_port(probe, r"^improv(-\d+)?:out$", timeout_s)


def headless(server: JackServer, extra: list[str], home: Path) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "improv", "--headless", "--api", "jack", "--config", str(home / "c.toml"), *extra]
    proc = subprocess.Popen(cmd, env=server.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_out_port()
        time.sleep(1.0)
        return rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(15)


def screen(server: JackServer, extra: list[str], home: Path) -> tuple[float, float]:
    """The TUI in a detached tmux session of its own (a private tmux server)."""
    socket = f"improv-rss-{time.monotonic_ns()}"
    marker = home / f"screen-{time.monotonic_ns()}.toml"  # unique argument: finds the process
    env = " ".join(f"{k}={v}" for k, v in server.env({}).items())
    command = f"env {env} {sys.executable} -m improv --api jack --config {marker} {' '.join(extra)}"
    subprocess.run(["tmux", "-L", socket, "new-session", "-d", "-x", "100", "-y", "30", command], check=True)
    try:
        _wait_for_out_port()
        time.sleep(1.5)
        pid = int(subprocess.run(["pgrep", "-f", "-n", f"improv --api jack --config {marker}"],
                                 capture_output=True, text=True, check=True).stdout.split()[0])
        return rss_mb(pid)
    finally:
        subprocess.run(["tmux", "-L", socket, "send-keys", "-t", "0", "C-c"], capture_output=True)
        time.sleep(1.0)
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    extra = ["--model", str(args.model)] if args.model else []
    modes = {"headless": headless}
    if shutil.which("tmux"):
        modes["screen (TUI)"] = screen
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in modes}
    base = []
    home = Path(tempfile.mkdtemp(prefix="improv-rss-"))
    try:
        with JackServer() as server:
            for _ in range(args.runs):
                base.append(baseline_mb())
                for name, run in modes.items():
                    results[name].append(run(server, extra, home))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    floor = statistics.median(base)
    print(f"{'case':<16} {'n':>3} {'rss MB':>8} {'jack shm':>9} {'own MB':>8} {'own max':>8} {'ratio':>6}")
    print(f"{'torch import':<16} {len(base):>3} {floor:>8.1f} {0.0:>9.1f} {floor:>8.1f} {max(base):>8.1f} {1.0:>6.2f}")
    worst = 0.0
    for name, runs in results.items():
        own = [total - jack for total, jack in runs]
        worst = max(worst, max(own))
        print(f"{name:<16} {len(runs):>3} {statistics.median(t for t, _ in runs):>8.1f} "
              f"{statistics.median(j for _, j in runs):>9.1f} {statistics.median(own):>8.1f} {max(own):>8.1f} "
              f"{statistics.median(own) / floor:>6.2f}")
    print(f"goal: own <= {GOAL_MB} MB in every run: {'met' if worst <= GOAL_MB else 'NOT met'} (worst {worst:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
