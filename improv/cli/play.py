"""The instrument's own command line: `improv` (the screen), `improv --headless` and `improv learn`."""

from __future__ import annotations

import argparse
import queue
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from improv.controls import actions as controls_mod
from improv.live.clock import QUANTIZE, REPLY_ON, Transport
from improv.live.engine import (
    SYNC_MODES,
    AnswerPlanned,
    Crashed,
    LearnedControl,
    Message,
    ReplyDone,
    StateChanged,
    TransportChanged,
)
from improv.errors import ConfigError, ImprovError
from improv.live.recording import Recording

from improv.live.session import DEFAULT_GAP_MS, LiveSession, ignore_exit_signals, install_exit_handlers

def add_live_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the instrument itself (`improv [options]`)."""
    g = parser.add_argument_group("live instrument")
    g.add_argument("--headless", action="store_true", help="run without the terminal UI until Ctrl-C or SIGTERM")
    g.add_argument("--api", choices=("auto", "alsa", "jack", "coremidi", "winmm"), default=None,
                   help="MIDI API (default: $IMPROV_MIDI_API or the platform's own)")
    g.add_argument("--in", dest="in_port", metavar="NAME", default=None,
                   help="listen on an existing input port (case-insensitive substring); default: a virtual port improv:in")
    g.add_argument("--out", dest="out_port", metavar="NAME", default=None,
                   help="answer on an existing output port; default: a virtual port improv:out")
    g.add_argument("--mode", choices=("call", "duet"), default=None, help="call: answer when you pause; duet: play along")
    g.add_argument("--gap", type=float, metavar="MS", default=None, help=f"silence that ends your phrase (default {DEFAULT_GAP_MS})")
    g.add_argument("--reply-notes", type=int, metavar="N", default=None, help="notes per reply (default 16)")
    g.add_argument("--reply-seconds", type=float, metavar="S", default=None, help="longest reply in seconds")
    g.add_argument("--temperature", type=float, metavar="T", default=None, help="sampling temperature at start, 0.1-3.0 (default 1.0)")
    g.add_argument("--temp-cc", type=int, metavar="N", default=None, help="CC that sets the temperature (default 1, mod wheel)")
    g.add_argument("--model", type=Path, metavar="FILE", default=None, help="model file (default: the shipped one)")
    g.add_argument("--out-channel", type=int, metavar="N", default=1, help="MIDI channel 1-16 for the answers (default 1)")
    g.add_argument("--thru", action="store_true", help="echo your notes to the output too")
    g.add_argument("--random-seed", type=int, metavar="N", default=None, help="make the answers repeatable")
    g.add_argument("--seed-events", type=int, metavar="N", default=None,
                   help="the rolling seed: keep the last N events to rebuild the model state from (default 64)")
    g.add_argument("--config", type=Path, metavar="FILE", default=None, help="config file (default: the user config)")
    g.add_argument("--key", default=None, help="keep answers in a key, e.g. C:minor")
    g.add_argument("--range", dest="pitch_range", default="21-108", help="lowest-highest answer pitch (default 21-108)")
    g.add_argument("--register-margin", type=int, metavar="N", default=None,
                   help="answers stay within N semitones of the notes you just played (default 12; 0: anywhere in --range)")
    g.add_argument("--chord-margin", type=int, metavar="N", default=None,
                   help="answers' chords have at most N more notes than your largest recent chord (default 1; at most 6)")
    p = parser.add_argument_group("answer planner (an answer's shape comes from your call)")
    p.add_argument("--no-plan", dest="plan", action="store_false", default=None,
                   help="answers as the model plays them, within --register-margin and --chord-margin only")
    p.add_argument("--plan-register", type=int, metavar="N", default=None,
                   help="semitones an answer's median may drift from your call's before it is steered back (default 4)")
    p.add_argument("--plan-leap", type=int, metavar="N", default=None,
                   help="semitones from your last notes to the answer's first, or a tone of your last chord (default 2)")
    p.add_argument("--plan-span", type=int, metavar="N", default=None,
                   help="semitones an answer may be wider than your call (default 12)")
    p.add_argument("--plan-pace", type=float, metavar="X", default=None,
                   help="an answer's steps within X times your call's pulse, either way (default 2)")
    p.add_argument("--plan-chord", type=int, metavar="N", default=None,
                   help="notes an answer's chord may have more than your call's largest (default 1)")
    p.add_argument("--plan-length", type=float, metavar="X", default=None,
                   help="answer notes per call note, at least 0.5, at most --reply-notes (default 4)")
    p.add_argument("--plan-motif", type=float, metavar="X", default=None,
                   help="0-1: share of the answer's melody notes that continue your call's motifs (default 1)")
    p.add_argument("--plan-key", type=float, metavar="X", default=None,
                   help="0-1: share of answer notes in your call's scale (default 1)")
    p.add_argument("--plan-quote", type=int, metavar="N", default=None,
                   help="notes of your call an answer may repeat in a row at the same pitch; after that its "
                        "motifs come back transposed or inverted (default 4; 0: any number)")
    p.add_argument("--plan-repeat", type=int, metavar="N", default=None,
                   help="times an answer may play a figure of its own (4 notes) at the same pitch; a third time "
                        "it comes back transposed or changed (default 2; 0: any number)")
    p.add_argument("--plan-accent", type=float, metavar="X", default=None,
                   help="0-1: how much louder or softer than your call, at that point of it, an answer note may "
                        "be (default 0.2: 20 %%)")
    g.add_argument("--follow", type=float, metavar="W", default=0.0,
                   help="0-1: how much answers follow what you have played this session (default 0: the model only)")
    g.add_argument("--sync", choices=SYNC_MODES, default="off",
                   help="clock: answer in time with incoming MIDI clock (Start/Stop/Continue/Song Position); "
                        "link: with an Ableton Link session on the local network")
    g.add_argument("--quantize", default="1/16", metavar="GRID",
                   help=f"grid for answers in time with a clock: {', '.join(QUANTIZE)} (default 1/16)")
    g.add_argument("--reply-on", choices=REPLY_ON, default="beat",
                   help="with a clock, answers start on the next beat, bar, or now (default beat)")
    g.add_argument("--clock-out", type=float, metavar="BPM", default=None,
                   help="be the clock: send MIDI clock, Start and Stop on the output at BPM")
    g.add_argument("--link-tempo", type=float, metavar="BPM", default=None,
                   help="--sync link: the tempo of the session when no peer is there yet (default 120)")
    g.add_argument("--link-quantum", type=int, metavar="BEATS", default=None,
                   help="--sync link: beats in the session's bar, for --reply-on bar (default 4)")
    g.add_argument("--synth", nargs="?", const="", default=None, metavar="SOUNDFONT",
                   help="play through the built-in General MIDI synth (a SoundFont: this file, the config's, "
                        "or one installed in the usual places)")
    g.add_argument("--player-program", type=int, metavar="N", default=0,
                   help="General MIDI program (0-127) of your notes on the synth (default 0, piano)")
    g.add_argument("--improv-program", type=int, metavar="N", default=4,
                   help="General MIDI program (0-127) of improv's notes on the synth (default 4, electric piano)")
    g.add_argument("--audio-driver", metavar="NAME", default=None,
                   help="synth audio output, e.g. pulseaudio, pipewire, alsa, jack, coreaudio, wasapi "
                        "(default: the first that works)")
    g.add_argument("--audio-buffer", type=int, metavar="FRAMES", default=512,
                   help="synth audio buffer in frames (default 512: 11.6 ms at 44.1 kHz)")
    g.add_argument("--record", type=Path, metavar="DIR", default=None,
                   help="headless: save the session (tracks player and improv) as a MIDI file in DIR on exit")


@dataclass
class HeadlessPrinter:
    out: TextIO
    _running: bool | None = None
    _peers: int | None = None
    _bpm: float | None = None

    def show(self, event: Any) -> None:
        if isinstance(event, TransportChanged):
            self._show_transport(event.transport)
            return
        if isinstance(event, ReplyDone):
            pitches = f"{min(event.pitches)}-{max(event.pitches)}" if event.pitches else "-"
            cut = "  (interrupted)" if event.interrupted else ""
            self.out.write(
                f"reply {event.notes:3d} notes  T {event.temperature:.2f}  latency {event.latency_ms:.1f} ms  "
                f"model {event.step_ms:.2f} ms/note  surprise {event.surprise:.2f} nats  "
                f"tempo x{event.tempo_factor:.2f}  pitches {pitches}{cut}\n"
            )
        elif isinstance(event, AnswerPlanned):
            self.out.write(f"{event.readout}\n")
        elif isinstance(event, StateChanged):
            self.out.write(f"temperature {event.temperature:.2f}  follow {event.follow:.2f}  mode {event.mode}"
                           f"{'  paused' if event.paused else ''}\n")
        elif isinstance(event, Message):
            self.out.write(f"{event.text}\n")
        elif isinstance(event, Crashed):
            self.out.write(f"engine stopped: {event.error}\n")
        else:
            return
        self.out.flush()

    def _show_transport(self, transport: Transport) -> None:
        """Start and stop of the clock; a Link session's peers and tempo when they change."""
        lines = []
        link = transport.peers is not None
        if link and transport.peers != self._peers:
            self._peers = transport.peers
            lines.append(f"link: {transport.peers} peer{'' if transport.peers == 1 else 's'}")
        if transport.bpm is not None:
            if transport.running != self._running:
                self._running = transport.running
                lines.append(f"{'link' if link else 'clock'} {'running' if transport.running else 'stopped'} "
                             f"at {transport.bpm:.1f} BPM")
            elif link and self._bpm is not None and f"{transport.bpm:.1f}" != f"{self._bpm:.1f}":
                lines.append(f"link tempo {transport.bpm:.1f} BPM")
            self._bpm = transport.bpm
        if lines:
            self.out.write("".join(f"{line}\n" for line in lines))
            self.out.flush()


def run_headless(args: argparse.Namespace) -> int:
    record_dir: Path | None = getattr(args, "record", None)
    if record_dir is not None and record_dir.exists() and not record_dir.is_dir():
        raise ConfigError(f"--record {record_dir}: not a directory")
    session = LiveSession(args)
    printer = HeadlessPrinter(sys.stdout)
    recording = Recording()
    try:
        install_exit_handlers(session)
        session.start()
        if session.synth is not None:
            print(f"synth: {session.synth_description}, {session.synth.latency_ms:.1f} ms audio buffer", flush=True)
        print(
            f"improv listening on {session.input.description}, answering on {session.output.description} "
            f"(mode {session.engine.mode}, gap {session.engine.settings.gap_s * 1000:.0f} ms, "
            f"T {session.engine.temperature:.2f}); Ctrl-C to stop",
            flush=True,
        )
        print(f"engine: {session.engine.priority}", flush=True)
        while True:
            try:
                event = session.engine.events.get(timeout=0.2)
            except queue.Empty:
                event = None
            if event is not None:
                recording.take(event, session.engine.clock())
                if isinstance(event, LearnedControl):
                    path = session.save_learned(event.learned)
                    print(f"learned {event.learned}; saved to {path}", flush=True)
                printer.show(event)
                if isinstance(event, Crashed):
                    return 1
            while True:
                try:
                    print(session.messages.get_nowait(), flush=True)
                except queue.Empty:
                    break
    except KeyboardInterrupt:
        return 130
    finally:
        ignore_exit_signals()
        session.silence()
        if record_dir is not None:
            _save_recording(recording, record_dir, session)
        session.close()


def _save_recording(recording: Recording, directory: Path, session: LiveSession) -> None:
    """The session's notes to DIR/session-*.mid (after every note was released)."""
    while True:  # what the engine said before it stopped
        try:
            recording.take(session.engine.events.get_nowait(), session.engine.clock())
        except queue.Empty:
            break
    if not len(recording):
        print(f"nothing played: no session saved in {directory}", flush=True)
        return
    try:
        path = recording.save(directory, session.engine.clock())
    except OSError as error:
        print(f"improv: could not save the session in {directory}: {error.strerror or error}", file=sys.stderr, flush=True)
        return
    print(f"session saved to {path}", flush=True)


def run_learn(args: argparse.Namespace) -> int:
    """`improv learn ACTION`: the next CC moved controls ACTION from now on (saved in the config)."""
    session = LiveSession(args)
    try:
        install_exit_handlers(session)
        session.start()
        session.engine.command("learn", controls_mod.Learner(args.action))
        print(f"move the control for {args.action} (listening on {session.input.description}); Ctrl-C to cancel",
              flush=True)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            try:
                event = session.engine.events.get(timeout=0.2)
            except queue.Empty:
                continue
            if isinstance(event, LearnedControl):
                path = session.save_learned(event.learned)
                print(f"learned {event.learned}; saved to {path}", flush=True)
                return 0
        raise ImprovError(f"no control moved within {args.timeout:g} s; nothing saved")
    except KeyboardInterrupt:
        return 130
    finally:
        ignore_exit_signals()
        session.close()


def add_learn_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("learn", help="map the next knob or button you move to an action",
                              description="Wait for the next CC moved and map it to ACTION (saved in the config).")
    p.add_argument("action", choices=[a.value for a in controls_mod.Action])
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default: %(default)s)")
    add_live_arguments(p)
    p.set_defaults(handler=run_learn)
