"""A long session played at improv over JACK, as a restless player would, and what its output did.

`run_soak` starts `improv --headless --api jack` on an existing JACK server, plays random phrases in several
keys with the sustain pedal, 200-byte sysex, program changes and MIDI clock into it, makes its input port vanish
and return, and listens to its output as an outside client. `analyse` reads what was heard: every key struck
again while it still sounded (a re-strike with no note-off between), and every note left sounding after the end.
"""

from __future__ import annotations

import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import rtmidi

from support.memory import rss_own_mb
from support.jack_server import (
    JackServer,
    MidiRecorder,
    connect_ports,
    open_midi_in,
    unique_client_name,
    wait_for_port,
)

SCALES = {"C major": (0, 2, 4, 5, 7, 9, 11), "A minor": (9, 11, 0, 2, 4, 5, 7), "E♭ major": (3, 5, 7, 8, 10, 0, 2),
          "F# dorian": (6, 8, 9, 11, 1, 3, 4), "G blues": (7, 10, 0, 1, 2, 5)}


@dataclass
class Heard:
    """What improv's output did, read from the messages an outside client heard."""

    note_ons: int = 0
    note_offs: int = 0
    restrikes: list[tuple[float, int, int]] = field(default_factory=list)  # (time, channel, pitch)
    sounding: set[tuple[int, int]] = field(default_factory=set)  # (channel, pitch) still on at the end


def analyse(messages: Sequence[tuple[float, bytes]]) -> Heard:
    """Re-strikes and notes left on in a stream of (time, raw MIDI) as heard at improv's output.

    A note-on for a (channel, key) that is already sounding is a re-strike: on a synth that gives every note-on
    its own voice, one voice hangs. All-notes-off (CC 123) and all-sound-off (CC 120) end a channel's notes.
    """
    heard = Heard()
    for t, data in messages:
        if len(data) < 3:
            continue
        kind, channel = data[0] & 0xF0, data[0] & 0x0F
        key = (channel, data[1])
        if kind == 0x90 and data[2] > 0:
            heard.note_ons += 1
            if key in heard.sounding:
                heard.restrikes.append((t, channel, data[1]))
            heard.sounding.add(key)
        elif kind == 0x80 or kind == 0x90:
            heard.note_offs += 1
            heard.sounding.discard(key)
        elif kind == 0xB0 and data[1] in (120, 123):
            heard.sounding = {k for k in heard.sounding if k[0] != channel}
    return heard



@dataclass
class SoakResult:
    seconds: float
    mode: str
    notes_in: int
    rss_mb: list[tuple[float, float]]  # (seconds since start, own RSS MB)
    heard: Heard
    answers: int
    exit_code: int
    port_returns: int
    ons_after_last_return: int = 0  # note-ons heard after the input port last came back: it reconnected
    stderr_tail: str = ""

    @property
    def rss_growth_mb(self) -> float:
        """RSS growth from the first sample after 20 s to the last."""
        after = [mb for t, mb in self.rss_mb if t >= 20] or [mb for _, mb in self.rss_mb]
        return after[-1] - after[0] if after else 0.0


class Player:
    """Random phrases in a few keys, with pedal, sysex, program changes and clock, on one JACK output."""

    def __init__(self, out: rtmidi.MidiOut, rng: random.Random) -> None:
        self.out = out
        self.rng = rng
        self.notes = 0
        self.held: set[int] = set()
        self.pedal = False

    def send(self, *data: int) -> None:
        self.out.send_message(list(data))

    def phrase(self, clock: Callable[[], None], stop: Callable[[], bool]) -> None:
        rng = self.rng
        scale = SCALES[rng.choice(list(SCALES))]
        low = rng.choice((48, 55, 60, 67))
        pitches = [p for p in range(low, low + 19) if p % 12 in scale]
        step_s = rng.choice((0.08, 0.12, 0.2, 0.3))
        if rng.random() < 0.3:
            self.send(0xC0, rng.randrange(128))  # program change
        if rng.random() < 0.2:
            self.send(0xF0, *[rng.randrange(128) for _ in range(198)], 0xF7)  # a 200-byte sysex
        for _ in range(rng.randint(3, 20)):
            if stop():
                break
            chord = rng.sample(pitches, rng.choice((1, 1, 1, 2, 3)))
            velocity = rng.randint(30, 120)
            for pitch in chord:
                if pitch not in self.held:
                    self.send(0x90, pitch, velocity)
                    self.held.add(pitch)
                    self.notes += 1
            if rng.random() < 0.15:
                self.pedal = not self.pedal
                self.send(0xB0, 64, 127 if self.pedal else 0)
            wait(step_s * rng.uniform(0.6, 1.4), clock)
            for pitch in chord:
                if pitch in self.held:
                    self.send(0x80, pitch, 0)
                    self.held.discard(pitch)
        self.release()

    def release(self) -> None:
        for pitch in sorted(self.held):
            self.send(0x80, pitch, 0)
        self.held.clear()
        if self.pedal:
            self.send(0xB0, 64, 0)
            self.pedal = False


def wait(seconds: float, clock: Callable[[], None]) -> None:
    """Sleep `seconds`, sending MIDI clock when it is due meanwhile."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        clock()
        time.sleep(min(left, 0.005))


def _keyboard(name: str) -> rtmidi.MidiOut:
    client = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=name)
    client.open_virtual_port("out")
    return client


def _close(client: rtmidi.MidiOut) -> None:
    client.close_port()
    time.sleep(0.05)  # a JACK process callback still running must finish before the client goes
    client.delete()


def run_soak(server: JackServer, seconds: float, *, mode: str = "duet", model: Path | None = None,
             report_every_s: float = 10.0, seed: int = 1, port_gone_every_s: float = 60.0,
             say: Callable[[str], None] = lambda _line: None) -> SoakResult:
    """Play at improv for `seconds`; SIGTERM it; return what was heard. `say` gets one line per report."""
    rng = random.Random(seed)
    keys_name = unique_client_name("soak-keys")
    home = Path(tempfile.mkdtemp(prefix="improv-soak-"))
    cmd = [sys.executable, "-m", "improv", "--headless", "--api", "jack", "--mode", mode, "--thru",
           "--in", keys_name, "--gap", "300", "--config", str(home / "config.toml")]
    if model is not None:
        cmd += ["--model", str(model)]
    env = server.env()
    env.update({"XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
                "PYTHONUNBUFFERED": "1"})
    answers = 0
    port_returns = 0
    last_return = float("inf")
    rss: list[tuple[float, float]] = []
    with MidiRecorder() as recorder:
        keys_client = _keyboard(keys_name)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            with open_midi_in(unique_client_name("soak-probe")) as probe:
                source = wait_for_port(probe, r"^improv(-\d+)?:out$", 60)
            connect_ports(source, recorder.port)
            player = Player(keys_client, rng)
            start = time.monotonic()
            next_pulse = start
            next_report = start
            next_gone = start + port_gone_every_s

            def clock() -> None:
                nonlocal next_pulse
                now = time.monotonic()
                if now >= next_pulse:
                    player.send(0xF8)  # MIDI clock, 24 per quarter at 120 BPM
                    next_pulse = max(next_pulse + 60 / 120 / 24, now)

            while (elapsed := time.monotonic() - start) < seconds:
                if proc.poll() is not None:
                    break
                if time.monotonic() >= next_report:
                    rss.append((elapsed, rss_own_mb(proc.pid)))
                    heard = analyse([(m.time_s, m.data) for m in recorder.messages])
                    say(f"{elapsed:7.0f} s  rss {rss[-1][1]:6.1f} MB  notes in {player.notes:6d}  "
                        f"out {heard.note_ons:6d}  re-strikes {len(heard.restrikes)}")
                    next_report += report_every_s
                if time.monotonic() >= next_gone and seconds - elapsed > 10:
                    player.release()
                    _close(keys_client)  # the player's keyboard is unplugged ...
                    wait(1.5, lambda: None)
                    keys_client = _keyboard(keys_name)  # ... and plugged in again
                    player.out = keys_client
                    port_returns += 1
                    last_return = time.monotonic()
                    next_gone += port_gone_every_s
                player.phrase(clock, lambda: time.monotonic() - start >= seconds)
                wait(rng.uniform(0.4, 1.2), clock)  # a pause: in call mode, improv answers here
            player.release()
            wait(1.0, clock)
            proc.send_signal(signal.SIGTERM)
            exit_code = proc.wait(20)
            time.sleep(0.3)  # the last note-offs reach the recorder
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            _close(keys_client)
        out, err = proc.communicate()
        answers = sum(1 for line in out.splitlines() if "notes" in line and "T " in line)
        heard = analyse([(m.time_s, m.data) for m in recorder.messages])
        ons_after = analyse([(m.time_s, m.data) for m in recorder.messages if m.time_s > last_return]).note_ons
    import shutil

    shutil.rmtree(home, ignore_errors=True)
    return SoakResult(seconds=seconds, mode=mode, notes_in=player.notes, rss_mb=rss, heard=heard,
                      answers=answers, exit_code=exit_code, port_returns=port_returns,
                      ons_after_last_return=ons_after,
                      stderr_tail="\n".join(err.splitlines()[-5:]))


def summary(result: SoakResult) -> str:
    rss = [mb for _, mb in result.rss_mb]
    restruck = sorted({p for _, _, p in result.heard.restrikes})
    lines = [
        f"{'case':<28} {'value':>12}",
        f"{'seconds played':<28} {result.seconds:>12.0f}",
        f"{'mode':<28} {result.mode:>12}",
        f"{'notes in (player)':<28} {result.notes_in:>12d}",
        f"{'note-ons out':<28} {result.heard.note_ons:>12d}",
        f"{'answer lines printed':<28} {result.answers:>12d}",
        f"{'input port gone and back':<28} {result.port_returns:>12d}",
        f"{'note-ons after last return':<28} {result.ons_after_last_return:>12d}",
        f"{'re-strikes (no off between)':<28} {len(result.heard.restrikes):>12d}",
        f"{'keys re-struck':<28} {str(restruck[:8]) if restruck else '-':>12}",
        f"{'sounding after SIGTERM':<28} {len(result.heard.sounding):>12d}",
        f"{'exit code':<28} {result.exit_code:>12d}",
    ]
    if rss:
        lines += [f"{'rss MB first / last':<28} {rss[0]:>5.1f} / {rss[-1]:>5.1f}",
                  f"{'rss MB median / max':<28} {statistics.median(rss):>5.1f} / {max(rss):>5.1f}",
                  f"{'rss growth after 20 s MB':<28} {result.rss_growth_mb:>12.1f}"]
    return "\n".join(lines)
