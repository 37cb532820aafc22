"""The real-time loop: player's notes in, the model's answers out. It only wires the parts.

Data flow: the MIDI input callback stamps raw bytes and `push`es them onto a bounded queue; the
engine thread drains it (the clock to the timing, controls, the echo filter, the player's side),
then lets the answer sample a few notes ahead and hands them to the output, which sends them when
due. Typed commands from a UI (`protocol`) arrive on a second queue; what the engine has to say
goes out on the event queue. Nothing below calls back up: the engine asks the output what it sent.
The engine does no file I/O and never waits for anyone but the clock.

Parts: `timing` (free time or a clock grid, chosen once), `player` (the player's notes, fed to
the model), `answer` (when to answer and the answer under way), `echo` (our own notes heard
back), `output` (owns the sounding notes).
"""

from __future__ import annotations

import gc
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from improv.live import priority
from improv.live.answer import EARLY_WAKE_S, MIN_DURATION_S, REPLY_TAG, Answer, key_lock, snap_to_pulse
from improv.live.echo import EchoFilter
from improv.live.listener import NoteStarted, NoteTracker
from improv.live.output import Output
from improv.live.player import CHORD_WINDOW_S, REFERENCE_VELOCITY, THRU_TAG, Player
from improv.live.protocol import (
    COMMANDS,
    AnswerPlanned,
    MODES,
    Command,
    Crashed,
    EngineState,
    Learn,
    LearnedControl,
    LockKey,
    Message,
    NotePlayed,
    NudgeFollow,
    NudgeTemperature,
    NudgeTempo,
    Panic,
    PlayerNoteOn,
    PlayKey,
    ReplyDone,
    Reroll,
    Reset,
    SetFollow,
    SetMode,
    SetModel,
    SetPaused,
    SetReplyLength,
    SetTemperature,
    StateChanged,
    TransportChanged,
    command_from,
)
from improv.live.settings import SYNC_MODES, EngineSettings
from improv.live.sync import choose_timing
from improv.live.timing import LATE_NOTE_S, REFERENCE_STEP_S, TEMPO_RANGE, Grid
from improv.midi.status import NOTE_OFF, NOTE_ON
from improv.model.model_file import LoadedModel
from improv.model.rolling_seed import Constraints, Improviser
from improv.model.style import StyleMemory, check_follow
from improv.model.temperature import check_temperature, nudge_temperature

__all__ = [  # the names front ends and tests import from here
    "CHORD_WINDOW_S", "EARLY_WAKE_S", "LATE_NOTE_S", "MIN_DURATION_S", "MODES", "PIANO_TAG", "PLAYER_TAGS",
    "REFERENCE_STEP_S", "REFERENCE_VELOCITY", "REPLY_TAG", "SYNC_MODES", "TEMPO_RANGE", "THRU_TAG",
    "AnswerPlanned", "Crashed", "Engine", "EngineSettings", "LearnedControl", "Message", "NotePlayed", "PlayerNoteOn",
    "ReplyDone", "StateChanged", "TransportChanged", "snap_to_pulse",
]

PIANO_TAG = "keys"  # notes played on the computer keyboard (the terminal UI's piano)
PLAYER_TAGS = frozenset((THRU_TAG, PIANO_TAG))  # notes of the player's that improv sounds
INPUT_QUEUE_SIZE = 8192
_WAKE: tuple[tuple[int, ...], float] = ((), 0.0)  # an empty input that only wakes the loop


class Engine:
    """Wires the timing, the player's side, the answer and the output; runs in one thread."""

    def __init__(
        self,
        model: LoadedModel,
        send: Callable[[Sequence[int]], object],
        settings: EngineSettings | None = None,
        controls: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = s = settings or EngineSettings()
        self.clock = clock
        self.improviser = Improviser(model, s.seed_events)
        self.improviser.warm_up()  # the first calls load the compiled kernels and fill caches: not during the first answer
        self.controls = controls
        self.learner: Any = None
        self.events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._input: queue.Queue[tuple[Sequence[int], float]] = queue.Queue(INPUT_QUEUE_SIZE)
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self.output = Output(send, s.max_hold_s)
        self.timing = choose_timing(s, self.output.send_now, self.events, lambda: self.push((), 0.0), clock)
        self.echo = EchoFilter(s.out_channel, s.echo_window_s)
        self.player = Player(s, self.improviser, self.timing, self.output, self.echo, self.events, clock)
        self.answer = Answer(s, self.player, self.timing, self.output, self.echo, self.improviser, self.events, clock)
        self.dropped_input = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failed: BaseException | None = None
        self.priority = "normal priority"  # the engine thread's scheduling, in words (see `start`)

    # -- what front ends read (from any thread) -------------------------------------------

    def state(self) -> EngineState:
        answer = self.answer
        return EngineState(answer.temperature, answer.mode, answer.paused, answer.follow, answer.constraints.key,
                           answer.late_notes, self.dropped_input, self.echo.ignored, self.output.send_errors,
                           self.output.sounding(), self.output.channels())

    temperature = property(lambda self: self.answer.temperature)
    mode = property(lambda self: self.answer.mode)
    paused = property(lambda self: self.answer.paused)
    follow = property(lambda self: self.answer.follow)
    late_notes = property(lambda self: self.answer.late_notes)
    ignored_echoes = property(lambda self: self.echo.ignored)
    tempo_factor = property(lambda self: self.timing.tempo_factor)

    @property
    def constraints(self) -> Constraints:
        return self.answer.constraints

    @property
    def tracker(self) -> NoteTracker:
        return self.player.tracker

    @property
    def style(self) -> StyleMemory:
        return self.player.style

    @property
    def grid(self) -> Grid | None:
        """The clock answers keep time with, once it is known; None when playing free."""
        return self.timing.grid()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- called from other threads ------------------------------------------------

    @property
    def settings(self) -> EngineSettings:
        return self._settings

    @settings.setter
    def settings(self, value: EngineSettings) -> None:  # new settings reach the parts that read them
        self._settings = self.answer.settings = self.player.settings = value

    def push(self, data: Sequence[int], time_s: float) -> None:
        """The MIDI input callback: enqueue and return at once."""
        try:
            self._input.put_nowait((data, time_s))
        except queue.Full:
            self.dropped_input += 1

    def send(self, command: Command) -> None:
        """Ask the engine thread to do something (see `protocol`)."""
        self._commands.put(command)
        try:
            self._input.put_nowait(_WAKE)  # the loop sleeps on the input queue: act now, not within 50 ms
        except queue.Full:
            pass  # it is busy with input anyway

    def command(self, name: str, value: Any = None) -> None:
        """`send` by name ("temperature", "mode", "panic", ...; see `protocol.COMMANDS`); a bad one becomes a Message."""
        try:
            command = command_from(name, value)
        except (TypeError, ValueError, IndexError) as error:
            self.events.put(Message(str(error) if name not in COMMANDS else f"{name}: {error}"))
            return
        self.send(command)

    def key(self, pitch: int, velocity: int) -> None:
        """A key of the computer-keyboard piano (velocity 0: released), played as the player's and sounded."""
        self.command("key", (pitch, velocity))

    def silence(self) -> None:
        """All notes off now, from any thread (the output is thread-safe); `Panic` also stops the answer."""
        self.output.panic()

    def set_tap(self, tap: Callable[[str | None, Sequence[int]], object] | None) -> None:
        """Let `tap(tag, message)` hear every message sent (the built-in synth); None: nobody."""
        self.output.tap = tap

    def channels(self) -> tuple[int, ...]:
        """The channels notes went out on so far."""
        return self.output.channels()

    def start(self, realtime: bool = False) -> None:
        """Run the loop in a thread (`realtime`: scheduled first, see `priority`); what is loaded stays out of gc."""
        gc.freeze()
        self._thread = threading.Thread(target=self.run, name="improv-engine", daemon=True)
        self._thread.start()
        if realtime:
            self.priority = priority.promote(self._thread)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the loop, then release every note (also when the thread is gone or stuck)."""
        self._stop.set()
        self.output.panic()  # now, whatever the wait below meets
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.output.panic()  # and what the loop's last pass may have struck meanwhile
        self.timing.stop()

    # -- the loop -------------------------------------------------------------------

    def run(self) -> None:
        try:
            self.timing.start(self.clock())
            while not self._stop.is_set():
                now = self.clock()
                timeout = self._wait_time(now)
                if timeout <= 0:
                    time.sleep(0)  # awake for a note due within EARLY_WAKE_S: let other threads run meanwhile
                try:
                    data, t = self._input.get(timeout=timeout) if timeout > 0 else self._input.get_nowait()
                    self._handle_input(data, t)
                except queue.Empty:
                    pass
                self.process(self.clock())
        except BaseException as error:  # any failure: silence first, then tell
            self.failed = error
            self.output.panic()
            self.events.put(Crashed(f"{type(error).__name__}: {error}"))

    def _wait_time(self, now: float) -> float:
        due, pulse_due = self.output.next_due(), self.timing.next_due()
        deadlines = [now + 0.05, *([due - EARLY_WAKE_S] if due is not None else []),
                     *([pulse_due] if pulse_due is not None else [])]
        return self.answer.wait_s(now, deadlines)

    def process(self, now: float) -> None:
        """One pass: drain input and commands, answer, sample ahead, send what is due."""
        while True:
            try:
                data, t = self._input.get_nowait()
            except queue.Empty:
                break
            self._handle_input(data, t)
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                break
            self._apply(command, now)
        if self.timing.tick(now) == "stop":
            self.answer.end(interrupted=True)  # the band stopped: silence before anything more is sent
        self._send_due(now)
        self.player.expire_stale(now)
        self.player.feed_ready(now)
        self.answer.step(now)
        self._send_due(self.clock())

    def _send_due(self, now: float) -> None:
        self.output.run_due(now)
        self.answer.heard(self.output.take_sent())

    # -- input ------------------------------------------------------------------------

    def _handle_input(self, data: Sequence[int], t: float) -> None:
        if not data:  # a wake-up (see `send`), or nothing at all
            return
        clock = self.timing.feed(data, t)
        if clock == "stop":
            self.answer.end(interrupted=True)  # Stop means silence
        if clock != "not clock":
            return
        if self.learner is not None:
            learned = self.learner.feed(data)
            if learned is not None:
                self.learner = None
                self.controls = self.controls.with_mapping(*learned) if self.controls is not None else None
                self.events.put(LearnedControl(learned))
                return
        if self.controls is not None:
            event = self.controls.match(data)
            if event is not None:
                if event.action is not None:  # None: a control's release, consumed
                    self._apply(command_from(str(event.action), event.value), t)
                return
        if self.echo.is_echo(data, t):
            return
        self._player_message(data, t)

    def _player_message(self, data: Sequence[int], t: float) -> None:
        for out in self.player.tracker.feed_bytes(data, t):
            if isinstance(out, NoteStarted):
                if self.answer.mode == "call":
                    self.answer.end(interrupted=True)  # the player plays on: the answer stops
                self.player.started(out)
            else:
                self.player.ended(out)

    def _play_key(self, pitch: int, velocity: int, now: float) -> None:
        """The computer-keyboard piano: sounded here (so a loop's echo of it is known) and heard as the player."""
        channel = self.settings.out_channel
        if not self.settings.thru:  # with thru, the player's path sounds it
            if velocity > 0:
                self.output.note_on_now(now, pitch, velocity, channel, PIANO_TAG)
            else:
                self.output.note_off_now(pitch, channel, PIANO_TAG)
            self.echo.remember(pitch, velocity > 0, now, velocity)
        self._player_message((NOTE_ON, pitch, velocity) if velocity > 0 else (NOTE_OFF, pitch, 0), now)

    # -- commands ---------------------------------------------------------------------

    def _apply(self, command: Command, now: float) -> None:
        try:
            changed = self._dispatch(command, now)
        except (TypeError, ValueError) as error:  # a bad value from a front end: say so, keep playing
            self.events.put(Message(f"{type(command).__name__}: {error}"))
            return
        if changed:
            answer = self.answer
            self.events.put(StateChanged(answer.temperature, answer.mode, answer.paused, answer.follow,
                                         answer.constraints.key))

    def _dispatch(self, command: Command, now: float) -> bool:
        """Do what `command` asks; True if the state a front end shows changed."""
        answer = self.answer
        if not isinstance(command, Learn):
            answer.take_back_early()
        match command:
            case SetTemperature(value):
                answer.temperature = check_temperature(value)
            case NudgeTemperature(step):
                answer.temperature = nudge_temperature(answer.temperature, step)
            case SetMode(mode):
                answer.mode = mode or ("duet" if answer.mode == "call" else "call")
                answer.end(interrupted=True)
            case SetPaused(paused):
                answer.paused = (not answer.paused) if paused is None else paused
                if answer.paused:
                    answer.end(interrupted=True)
            case Panic():
                answer.end(interrupted=True)
                self.output.panic()
            case Reset():
                answer.end(interrupted=True)
                self.player.reset()
                answer.reply_start = None
            case SetReplyLength(notes):
                self.settings = replace(self.settings, reply_notes=notes)
            case SetFollow(value):
                answer.follow = check_follow(value)
            case NudgeFollow(step):
                answer.follow = min(max(round(answer.follow + step, 2), 0.0), 1.0)
            case Learn(learner):
                self.learner = learner
                return False
            case SetModel(model):
                self.improviser.set_model(model)
                self.player.set_model()
                answer.reply_start = None  # a state of the old model cannot be restored into the new one
            case Reroll():
                return answer.reroll(now)
            case LockKey(key):
                constraints, text = key_lock(answer.constraints, key, self.player.recent)
                self.events.put(Message(text))
                if constraints is None:
                    return False
                answer.constraints = constraints
            case PlayKey(pitch, velocity):
                self._play_key(pitch, velocity, now)
                return False  # a note, not a change of state
            case NudgeTempo(step):
                self.events.put(Message(self.timing.nudge_tempo(step, now)))
                return False  # the tempo shows with the transport
        return True
