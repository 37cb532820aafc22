"""The terminal UI around a running live session.

The engine runs in its own thread; this app only reads the engine's event
queue (a 30 Hz timer drains it, so a flood of notes costs one repaint per
tick) and sends commands. The computer-keyboard piano's keys are commands
too (`Engine.key`): the engine thread sounds them and hears them as the
player's.

Whatever ends the app (q, ctrl+c, a signal, an exception in a widget) goes
through `release_and_exit` or `on_unmount`, both of which silence the
session (the engine stops, every note is released) and, unless the caller
closes it itself (`close_session=False`, as `run_tui` does), close it.
"""

from __future__ import annotations

import asyncio
import queue
import signal
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Static

from improv.live.clock import Transport
from improv.live.control_map import ControlMap
from improv.live.controls import Action, Learned, Learner
from improv.live.engine import (
    Crashed,
    Engine,
    LearnedControl,
    Message,
    PlayerNoteOn,
    ReplyDone,
    StateChanged,
    TransportChanged,
)
from improv.errors import ImprovError
from improv.live.session import ignore_exit_signals
from improv.live.recording import IMPROV, Recording
from improv.tui.keys import KEY_BAR, KEY_COMMANDS, LETTER_ACTIONS, PIANO_BAR
from improv.tui.computer_piano import NOTE_S, VELOCITY, ComputerPiano
from improv.tui.readouts import (
    LatencyStats,
    gauge,
    key_text,
    number,
    source_name,
    temperature_fraction,
)
from improv.tui.screens import HelpScreen, LearnPicker, PortNow, PortPicker
from improv.tui.widgets import FlowLine, PianoRoll

POLL_HZ = 30
MAX_EVENTS_PER_POLL = 5000  # a flood beyond this waits for the next tick
GAUGE_WIDTH = 20
FOLLOW_GAUGE_WIDTH = 10
_STATE_READINGS = ("temperature", "follow", "transport", "mode", "key", "learning", "surprise")


class Port(Protocol):
    @property
    def description(self) -> str: ...

    @property
    def port_name(self) -> str: ...

    @property
    def virtual(self) -> bool: ...


class Session(Protocol):
    """What the app needs of a live session (`improv.live.session.LiveSession`; tests pass a fake)."""

    engine: Engine
    input: Any  # Port | None
    output: Any  # Port | None
    messages: queue.SimpleQueue[str]
    problems: list[str]
    control_map: ControlMap
    api: str | None
    unsent: int
    synth: Any  # improv.sound.synth.Synth | None

    def start_synth(self) -> str: ...

    def stop_synth(self) -> None: ...

    def list_ports(self, api: str | None = None) -> tuple[list[str], list[str]]: ...

    def switch_input(self, spec: str | None, api: str | None = None) -> str: ...

    def switch_output(self, spec: str | None, api: str | None = None) -> str: ...

    def save_learned(self, learned: Learned) -> Path: ...

    def close(self) -> None: ...


def default_sessions_dir() -> Path:
    """Where `s` saves: <user data dir>/sessions, e.g. ~/.local/share/improv/sessions on Linux."""
    import platformdirs

    return Path(platformdirs.user_data_dir("improv")) / "sessions"


def _bar(items: Sequence[tuple[str, str]]) -> list[Text]:
    return [Text.assemble((key, "bold reverse"), " ", label) for key, label in items]


class ImprovApp(App[int]):
    """See and steer a live session from the computer keyboard."""

    CSS_PATH = "app.tcss"
    TITLE = "improv"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        *(Binding(command.keys, command.action, show=False, priority=command.action == "piano")
          for command in KEY_COMMANDS),
        Binding("exclamation_mark", "panic", show=False, priority=True),  # also over the pickers
        # Not "quit": that one is q's, and off while the letters play the piano; ctrl+c always quits.
        Binding("ctrl+c", "quit_anyway", show=False, priority=True),
    ]

    temperature = reactive(1.0, init=False)
    mode = reactive("call", init=False)
    paused = reactive(False, init=False)
    key = reactive[tuple[int, str] | None](None, init=False)
    piano_on = reactive(False, init=False)
    learning = reactive[Action | None](None, init=False)
    surprise = reactive[float | None](None, init=False)  # nats per note of the last answer
    follow = reactive(0.0, init=False)
    transport = reactive[Transport | None](None, init=False)  # the clock answers keep time with

    def __init__(
        self,
        session: Session,
        *,
        clock: Callable[[], float] | None = None,
        sessions_dir: Path | None = None,
        apis: Sequence[str] | None = None,
        close_session: bool = True,
        handle_signals: bool = False,
        poll_hz: float = POLL_HZ,
    ) -> None:
        super().__init__()
        self.session = session
        engine = session.engine
        self.clock = clock or engine.clock
        self.sessions_dir = sessions_dir
        self.apis = list(apis) if apis is not None else _available_apis()
        self.close_session = close_session
        self.handle_signals = handle_signals
        self.poll_hz = poll_hz
        self.recording = Recording()
        self.latency = LatencyStats()
        self.step_ms: float | None = None
        self.piano = ComputerPiano()
        self._piano_notes: dict[int, Timer] = {}
        self._hint: str | None = None  # the start-up hint, while it is the status line
        self._roll_version = -1
        self._roll_frame = -1
        self._status = Static("", id="status")
        self._ports = FlowLine(id="ports")
        self._state = FlowLine("   ", id="state")
        self._temperature = FlowLine("   ", id="temperature")
        self._roll = PianoRoll(self.recording, self.clock, id="roll")
        self._latency = FlowLine(" │ ", id="latency")
        self._keys = FlowLine(id="keys")
        self.set_reactive(ImprovApp.temperature, engine.temperature)
        self.set_reactive(ImprovApp.mode, engine.mode)
        self.set_reactive(ImprovApp.paused, engine.paused)
        self.set_reactive(ImprovApp.key, engine.constraints.key)
        self.set_reactive(ImprovApp.follow, engine.follow)

    # -- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield self._ports
        yield self._state
        yield self._temperature
        yield self._roll
        yield self._latency
        yield self._status
        yield self._keys

    def on_mount(self) -> None:
        for name in _STATE_READINGS:  # each shows on the state and temperature lines
            self.watch(self, name, lambda _value: self._show_state(), init=False)
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for name in ("SIGTERM", "SIGHUP", "SIGINT"):
                if hasattr(signal, name):
                    loop.add_signal_handler(getattr(signal, name), self.release_and_exit, 128 + getattr(signal, name))
        self._show_state()
        self._show_keys()
        text, error = self._startup_hint()
        self.say(text, error)
        self._hint = None if error else text  # cleared when the player's first note shows it was heard
        self.poll()
        self.set_interval(1 / self.poll_hz, self.poll)

    def _startup_hint(self) -> tuple[str, bool]:
        ports = [p for p in self.session.problems if p.startswith("no MIDI")]
        others = [p for p in self.session.problems if not p.startswith("no MIDI")]
        if ports or others:
            parts = ([_combine(ports).replace(": ", " (press p): ", 1)] if ports else []) + [
                p.replace(": ", " (a retries): ", 1) if p.startswith("no synth") else p for p in others]
            return " · ".join(parts), True
        port = self.session.input
        if port is not None and port.virtual:
            return f"connect a keyboard to {port.port_name}, or press tab to play here · ? help", False
        if port is not None and not getattr(port, "connected", True):
            return f"waiting for {port.port_name}: plug it in, or press p to pick another · ? help", False
        return "play a phrase and pause: improv answers · ? help", False

    # -- what the engine says -------------------------------------------------------------

    def poll(self) -> None:
        """Take what the engine and the port watcher reported, then repaint what changed."""
        engine = self.session.engine
        for _ in range(MAX_EVENTS_PER_POLL):
            try:
                event = engine.events.get_nowait()
            except queue.Empty:
                break
            self.handle_event(event)
        while True:
            try:
                message = self.session.messages.get_nowait()
            except queue.Empty:
                break
            self.say(message, error="disconnected" in message)
        self._show_ports()
        self._show_readings()
        roll = self._roll
        frame = roll.frame()
        if self.recording.version != self._roll_version or (frame != self._roll_frame and roll.showing_notes):
            self._roll_version, self._roll_frame = self.recording.version, frame
            roll.refresh()

    def handle_event(self, event: object) -> None:
        self.recording.take(event, self.clock())
        if isinstance(event, ReplyDone):
            if event.notes:
                self.surprise = event.surprise
                self.step_ms = event.step_ms
            if not event.rerolled:
                self.latency.add(event.latency_ms)
        elif isinstance(event, PlayerNoteOn):
            if self._hint is not None and self.status_text == self._hint:
                self.say("")
            self._hint = None
        elif isinstance(event, StateChanged):
            self.temperature, self.mode, self.paused, self.key, self.follow = (
                event.temperature, event.mode, event.paused, event.key, event.follow)
        elif isinstance(event, TransportChanged):
            self.transport = event.transport
        elif isinstance(event, Message):
            self.say(event.text)
        elif isinstance(event, LearnedControl):
            self._learned(event.learned)
        elif isinstance(event, Crashed):
            self.say(f"the engine stopped ({event.error}); every note was released — press q to quit", error=True)

    def _learned(self, learned: Learned) -> None:
        self.learning = None
        control = source_name(learned.source)
        try:
            path = self.session.save_learned(learned)
        except ImprovError as error:
            self.say(f"learned {learned.action} on {control} for now, but not saved: {error}", error=True)
            return
        self.say(f"learned: {control} controls {learned.action}; saved to {path}")
        self._show_state()

    # -- showing ------------------------------------------------------------------------------

    def say(self, text: str, error: bool = False) -> None:
        """One line in the status area (errors stand out, also without colour)."""
        self._status.update(Text(f"! {text}" if error else text, no_wrap=False))
        self._status.set_class(error, "-error")

    @property
    def status_text(self) -> str:
        content = self._status.content
        return content.plain if isinstance(content, Text) else str(content)

    def _show_ports(self) -> None:
        pieces = []
        for label, port in (("in", self.session.input), ("out", self.session.output)):
            description = port.description if port is not None else "none (press p)"
            pieces.append(Text.assemble((label, "bold"), " ", description))
        self._ports.set_pieces(pieces)

    def _show_state(self) -> None:
        activity = Text("PAUSED (space: listen)", "bold reverse") if self.paused else Text("listening")
        pieces: list[Text | str] = [Text.assemble("mode ", (self.mode, "bold")), activity, key_text(self.key)]
        if self.piano_on:
            pieces.append(Text.assemble(("piano on", "bold"), f", a = {self.piano.octave_name}"))
        else:
            pieces.append("piano off")
        if self.learning is not None:
            pieces.append(Text(f"learning {self.learning}: move a control (l: cancel)", "bold"))
        clock = self._clock_text()
        if clock is not None:
            pieces.append(clock)
        self._state.set_pieces(pieces)
        bounds = self.session.control_map.temperature_bounds
        control = source_name(self.session.control_map.source(Action.TEMPERATURE))
        self._temperature.set_pieces([
            Text.assemble(("temperature", "bold"), f" {self.temperature:.2f} ",
                          gauge(temperature_fraction(self.temperature, bounds), GAUGE_WIDTH), f" {control}"),
            f"surprise {number(self.surprise, 2)} nats",
            Text.assemble(("follow", "bold"), f" {self.follow:.2f} ", gauge(self.follow, FOLLOW_GAUGE_WIDTH),
                          f" {source_name(self.session.control_map.source(Action.FOLLOW))}"),
        ])

    def _clock_text(self) -> Text | None:
        """Tempo and beat when answers keep time with a clock; None when playing free."""
        settings = self.session.engine.settings
        if settings.sync == "off" and settings.clock_out_bpm is None:
            return None
        transport = self.transport
        who = "clock out" if settings.clock_out_bpm is not None else "clock"
        if transport is None or transport.bpm is None:
            return Text(f"{who}: waiting for MIDI clock" if settings.sync == "clock" else f"{who}: starting")
        if not transport.running:
            return Text.assemble(f"{who} ", (f"{transport.bpm:.1f} BPM", "bold"), " stopped")
        beats = "".join("●" if b == transport.beat else "·" for b in range(1, transport.beats_per_bar + 1))
        return Text.assemble(f"{who} ", (f"{transport.bpm:.1f} BPM", "bold"),
                             f" bar {transport.bar} beat {transport.beat} {beats}")

    def _show_readings(self) -> None:
        engine = self.session.engine
        output = self.session.output
        dropped = (engine.dropped_input + engine.scheduler.send_errors + self.session.unsent
                   + (getattr(output, "dropped", 0) if output is not None else 0))
        late = getattr(engine, "late_notes", 0)
        stats = self.latency
        self._latency.set_pieces([
            f"reply {number(stats.last)} ms (median {number(stats.median)}, p99 {number(stats.p99)})",
            f"model {number(self.step_ms, 2)} ms/note",
            f"late {late}, dropped {dropped}",
            *([f"audio {synth.latency_ms:.1f} ms"] if (synth := self.session.synth) is not None else []),
        ])

    def _show_keys(self) -> None:
        self._keys.set_pieces(_bar(PIANO_BAR if self.piano_on else KEY_BAR))

    def watch_paused(self, paused: bool) -> None:
        self._state.set_class(paused, "-paused")
        self._show_state()

    def watch_piano_on(self, piano_on: bool) -> None:
        self._keys.set_class(piano_on, "-piano")
        self._show_keys()
        self._show_state()

    # -- keys ----------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "piano" and len(self.screen_stack) > 1:
            return False  # tab moves between lists in the pickers
        if self.piano_on and action in LETTER_ACTIONS:
            return False  # the letters are the piano's now
        return True

    def on_key(self, event: events.Key) -> None:
        """The computer-keyboard piano (bindings of letters are off while it is on, so keys arrive here)."""
        if not self.piano_on or len(self.screen_stack) > 1 or event.character is None:
            return
        if self.piano.shift(event.character):
            self._show_state()
            self.say(f"piano: a = {self.piano.octave_name} (z/x: octave down/up)")
        else:
            pitch = self.piano.pitch(event.character)
            if pitch is None:
                return
            self.play_key(pitch)
        event.stop()
        event.prevent_default()

    def play_key(self, pitch: int) -> None:
        """A note of NOTE_S from the computer keyboard, as the player's; a repeat keeps it sounding."""
        sounding = self._piano_notes.pop(pitch, None)
        if sounding is not None:
            sounding.stop()
        else:
            self.session.engine.key(pitch, VELOCITY)
        self._piano_notes[pitch] = self.set_timer(NOTE_S, partial(self._release_key, pitch))

    def _release_key(self, pitch: int) -> None:
        self._piano_notes.pop(pitch, None)
        self.session.engine.key(pitch, 0)

    def action_pause(self) -> None:
        self.session.engine.command("pause")

    def action_temperature(self, step: float) -> None:
        self.session.engine.command("temperature_step", step)

    def action_synth(self) -> None:
        """The built-in synth on or off; a message, never a crash, when it cannot start."""
        session = self.session
        if session.synth is not None:
            session.stop_synth()
            self.say("synth off: improv sounds only on its MIDI output")
            return
        try:
            description = session.start_synth()
        except ImprovError as error:
            self.say(f"no synth: {error}", error=True)
            return
        self.say(f"synth on: {description}")

    def action_follow(self, step: float) -> None:
        self.session.engine.command("follow_step", step)

    def action_mode(self) -> None:
        self.session.engine.command("mode")

    def action_reroll(self) -> None:
        self.session.engine.command("reroll")
        self.say("re-rolling the last answer")

    def action_reset(self) -> None:
        self.session.engine.command("reset")
        self.say("seed cleared: improv forgets what it heard")

    def action_key_lock(self) -> None:
        self.session.engine.command("key_lock")

    def action_panic(self) -> None:
        """All notes off now, from this thread (the scheduler is thread-safe), then in the engine too,
        so the answer under way stops instead of going on."""
        engine = self.session.engine
        engine.scheduler.panic()
        engine.command("panic")
        self.recording.cut(IMPROV, self.clock())
        self.say("panic: all notes off")

    def action_piano(self) -> None:
        self.piano_on = not self.piano_on
        if self.piano_on:
            self.say(f"piano on: a = {self.piano.octave_name}, each key plays {NOTE_S * 1000:.0f} ms; "
                     "tab gives the letters back")  # one line at 80 columns
        else:
            self.say("piano off: letters are commands again")

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_save(self) -> None:
        if not len(self.recording):
            self.say("nothing to save yet: play a few notes first")
            return
        directory = self.sessions_dir or default_sessions_dir()
        try:
            path = self.recording.save(directory, self.clock())
        except OSError as error:
            self.say(f"cannot save the session in {directory}: {error.strerror or error}", error=True)
            return
        tracks = self.recording.tracks(self.clock())
        self.say(f"saved {len(tracks['player'])} + {len(tracks['improv'])} notes to {path}")

    def action_learn(self) -> None:
        if self.learning is not None:
            self.session.engine.command("learn", None)
            self.learning = None
            self.say("MIDI learn cancelled")
            return

        def chosen(action: Action | None) -> None:
            if action is None:
                return
            self.session.engine.command("learn", Learner(action))
            self.learning = action
            kind = "knob (a CC)" if action.continuous else "knob, button or key"
            self.say(f"MIDI learn: move the {kind} that should control {action} (l: cancel)")

        self.push_screen(LearnPicker(), chosen)

    def action_ports(self) -> None:
        self.push_screen(PortPicker(self.session.list_ports, self.switch_port, self._ports_now,
                                    self.session.api, self.apis))

    def _ports_now(self) -> tuple[PortNow, PortNow]:
        def now(port: Any) -> PortNow:
            if port is None:
                return PortNow("none", None, False)
            return PortNow(port.description, port.port_name, port.virtual)

        return now(self.session.input), now(self.session.output)

    def switch_port(self, kind: str, spec: str | None, api: str | None) -> str:
        """Open another input or output now; ImprovError (old port kept) if it cannot open."""
        switch = self.session.switch_input if kind == "input" else self.session.switch_output
        try:
            description = switch(spec, api)
        except ImprovError as error:
            self.say(f"{kind} not switched: {error}", error=True)
            raise
        self.say(f"{kind}: {description}")
        self._show_ports()
        return description

    async def action_quit(self) -> None:
        self.release_and_exit()

    async def action_quit_anyway(self) -> None:
        self.release_and_exit()

    # -- ending ----------------------------------------------------------------------------------

    def release_and_exit(self, code: int = 0) -> None:
        """Release every note (stop the engine; close the ports unless the caller does), then leave."""
        self._close_session()
        self.exit(code)

    def _close_session(self) -> None:
        for timer in self._piano_notes.values():
            timer.stop()
        self._piano_notes.clear()
        self.session.silence()
        if self.close_session:
            self.session.close()

    def on_unmount(self) -> None:
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for name in ("SIGTERM", "SIGHUP", "SIGINT"):
                if hasattr(signal, name):
                    loop.remove_signal_handler(getattr(signal, name))  # which restores the default action:
            ignore_exit_signals()  # a signal from now on must not cut the closing short
        self._close_session()


def _combine(problems: Sequence[str]) -> str:
    """'no MIDI output: X' and 'no MIDI input: X' -> 'no MIDI input or output: X'; others joined with ' · '."""
    reasons = {problem.partition(": ")[2] for problem in problems}
    if len(problems) == 2 and len(reasons) == 1:
        return f"no MIDI input or output: {reasons.pop()}"
    return " · ".join(problems)


def _available_apis() -> list[str]:
    from improv.midi.ports import available_apis

    return available_apis()
