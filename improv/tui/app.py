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
from pathlib import Path

from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Static

from improv.live.clock import Transport
from improv.controls.actions import Action, Learned
from improv.live.engine import (
    AnswerPlanned,
    Crashed,
    LearnedControl,
    Message,
    PlayerNoteOn,
    ReplyDone,
    StateChanged,
    TransportChanged,
)
from improv.errors import ImprovError
from improv.live.session import ignore_exit_signals
from improv.live.recording import Recording
from improv.tui.keys import KEY_COMMANDS, LETTER_ACTIONS
from improv.tui.computer_piano import ComputerPiano
from improv.tui.readouts import (
    LatencyStats,
    source_name,
)
from improv.tui.widgets import FlowLine, PianoRoll

from improv.tui.actions import KeyActions
from improv.tui.session import Session
from improv.tui.status import StatusLines
POLL_HZ = 30
MAX_EVENTS_PER_POLL = 5000  # a flood beyond this waits for the next tick
_STATE_READINGS = ("temperature", "follow", "transport", "mode", "key", "learning", "surprise")


class ImprovApp(StatusLines, KeyActions, App[int]):
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
    plan_readout = ""  # the last answer's plan (`AnswerPlanned`), shown with the readings
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
        piano: bool = False,
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
        self._piano_at_start = piano  # no MIDI at all (`prepare_without_midi`): the letters play from the start

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
        if self._piano_at_start:
            self.piano_on = True
        text, error = self._startup_hint()
        self.say(text, error)
        self._hint = None if error else text  # cleared when the player's first note shows it was heard
        self.poll()
        self.set_interval(1 / self.poll_hz, self.poll)

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
        elif isinstance(event, AnswerPlanned):
            self.plan_readout = event.readout
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


def _available_apis() -> list[str]:
    from improv.midi.ports import available_apis

    return available_apis()
