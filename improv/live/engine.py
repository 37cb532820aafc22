"""The real-time loop: player's notes in, the model's answers out.

Data flow: the MIDI input callback stamps raw bytes and `push`es them onto a
bounded queue; the engine thread drains it (controls, echo suppression,
note tracking), feeds finished notes to the rolling seed one event at a time,
decides when to answer, samples the answer a few notes ahead of time and
hands the notes to the scheduler, which sends them when due. Commands from a
UI arrive on a second queue; what the engine has to say goes out on an event
queue. The engine does no file I/O and never waits for anyone but the clock.

Tempo and dynamics are normalised on the way in and restored on the way
out: the model was trained on notated music at fixed tempi and notated
dynamics, so the player's steps are divided by a tempo factor (the player's
median inter-onset interval over `REFERENCE_STEP_S`) before the model sees
them, and the model's steps are multiplied by it; velocities likewise.
"""

from __future__ import annotations

import gc
import math
import queue
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from improv.model import sampling
from improv.live.clock import (
    CLOCK,
    CONTINUE,
    PULSES_PER_QUARTER,
    REPLY_ON,
    SONG_POSITION,
    START,
    STOP,
    ClockFollower,
    ClockMaster,
    Grid,
    Transport,
    pulse_seconds,
)
from improv.music.events import Event
from improv.model.rolling_seed import Constraints, Improviser, SeedSnapshot, estimate_key
from improv.model.network import LoadedModel
from improv.live.output import Scheduler, Sent
from improv.model.temperature import check_temperature, nudge_temperature
from improv.model.style import StyleMemory, check_follow
from improv.live.listener import NoteStarted, NoteTracker

REFERENCE_STEP_S = 0.25  # a typical non-chord step of the training data at notated tempo
REFERENCE_VELOCITY = 80
CHORD_WINDOW_S = 0.035  # onsets closer than this are one chord
MIN_DURATION_S = 0.03
TEMPO_RANGE = (0.3, 3.5)
MODES = ("call", "duet")
SYNC_MODES = ("off", "clock")
SYNC_LEAD_S = 0.004  # a synced note is placed on a grid point at least this far ahead
REPLY_TAG = "reply"
THRU_TAG = "thru"
PIANO_TAG = "keys"  # notes played on the computer keyboard (the terminal UI's piano)
PLAYER_TAGS = frozenset((THRU_TAG, PIANO_TAG))  # notes of the player's that improv sounds
INPUT_QUEUE_SIZE = 8192
MIN_REGISTER_MARGIN = 6  # a tritone each way: every pitch class stays in reach, so a key lock still has notes
CHORD_MEMORY = 8  # the player's last onsets whose chord sizes `chord_margin` follows
KEY_LOCK_NOTES = 24  # the player's last notes that `key_lock` estimates the key from
KEY_LOCK_MIN_NOTES = 3
_CLOCK_STATUSES = frozenset((CLOCK, START, CONTINUE, STOP, SONG_POSITION))
_WAKE: tuple[tuple[int, ...], float] = ((), 0.0)  # an empty input that only wakes the loop
NOTE_ON = 0x90
NOTE_OFF = 0x80
EARLY_WAKE_S = 0.0015  # wake this long before a note is due and stay awake: the OS may wake a thread late
LATE_NOTE_S = 0.010  # an answer note sent later than this after its time counts in `late_notes`


@dataclass
class EngineSettings:
    mode: str = "call"
    gap_s: float = 0.5
    reply_notes: int = 16
    reply_seconds: float | None = None
    temperature: float = 1.0
    follow: float = 0.0  # how much answers follow the player's own style (0: the trained model only)
    top_p: float | None = None
    out_channel: int = 0
    thru: bool = False
    seed_events: int = 64
    random_seed: int | None = None
    pitch_range: tuple[int, int] = (21, 108)
    key: tuple[int, str] | None = None
    max_polyphony: int = 6
    # An answer's chords have at most this many notes more than the player's largest chord of late
    # (their last CHORD_MEMORY onsets), up to max_polyphony; None: up to max_polyphony. Played a
    # single line, the model answered it with three- and four-note chords.
    chord_margin: int | None = 1
    # Answers stay within this many semitones of the notes the player has just played (their last
    # KEY_LOCK_NOTES), inside pitch_range; None or 0: anywhere in pitch_range. The model, trained on
    # two-handed piano music, otherwise leaps between registers (a C major arpeggio in 55-72 drew
    # 16-note answers spanning a median 31 semitones, a third of them above C6).
    register_margin: int | None = 12
    echo_window_s: float = 0.03
    max_hold_s: float = 10.0
    stale_key_s: float = 8.0  # a player's key down this long without its note-off is taken as released
    lookahead_s: float = 0.05
    # Sample an answer's opening this long before the gap ends (taken back if the player plays on
    # meanwhile): its first note then sounds the moment the gap ends, and its first chord together.
    presample_s: float = 0.03
    duet_lookahead_s: float = 0.15
    velocity_range: tuple[int, int] = (20, 120)
    sync: str = "off"  # "clock": follow incoming MIDI clock
    clock_out_bpm: float | None = None  # be the clock: send it on the output at this tempo
    quantize: int | None = 6  # grid of synced answers in clock pulses (6 = 1/16); None: off
    reply_on: str = "beat"  # synced answers start on the next "beat", "bar", or "now"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {', '.join(SYNC_MODES)}, got {self.sync!r}")
        if self.reply_on not in REPLY_ON:
            raise ValueError(f"reply-on must be one of {', '.join(REPLY_ON)}, got {self.reply_on!r}")
        if self.sync == "clock" and self.clock_out_bpm is not None:
            raise ValueError("sync clock and --clock-out exclude each other: follow a clock or be one")
        check_temperature(self.temperature)
        check_follow(self.follow)
        if self.chord_margin is not None and self.chord_margin < 0:
            raise ValueError(f"chord-margin must be 0 or more notes, got {self.chord_margin!r}")
        margin = self.register_margin
        if margin is not None and margin != 0 and not MIN_REGISTER_MARGIN <= margin <= 127:
            raise ValueError(f"register-margin must be 0 (off) or {MIN_REGISTER_MARGIN}-127 semitones, "
                             f"got {self.register_margin!r}")
        if not self.presample_s >= 0.0:
            raise ValueError(f"presample must be 0 or more seconds, got {self.presample_s!r}")
        if self.clock_out_bpm is not None:
            try:
                pulse_seconds(self.clock_out_bpm)
            except ValueError as error:
                raise ValueError(f"clock-out {error}") from None


PULSE_RATIOS = (1 / 4, 1 / 3, 1 / 2, 1.0, 3 / 2, 2.0, 3.0, 4.0)


def snap_to_pulse(step_s: float, pulse_s: float | None) -> float:
    """Move a reply step onto the player's pulse: the nearest simple ratio of it (on a log scale).

    The model's steps come from notated music, in bins; scaled to the player's tempo they land
    near, not on, the player's subdivisions. Snapping keeps the answer in the player's time.
    Chord tones (0), ornaments (under a sixth of the pulse) and long rests (over 4 pulses) stay.
    """
    if pulse_s is None or pulse_s <= 0 or step_s < pulse_s / 6 or step_s > 4 * pulse_s:
        return step_s
    ratio = step_s / pulse_s
    best = min(PULSE_RATIOS, key=lambda r: abs(math.log(ratio / r)))
    return best * pulse_s


# -- what the engine tells the outside world -----------------------------------


@dataclass(frozen=True, slots=True)
class NotePlayed:
    """A note that sounded: the player's (when it ends) or improv's (when it starts)."""

    who: str  # "player" or "improv"
    pitch: int
    velocity: int
    start: float
    duration: float


@dataclass(frozen=True, slots=True)
class ReplyDone:
    notes: int
    temperature: float
    latency_ms: float  # from the end of the gap to the first note-on sent
    step_ms: float  # mean model work per sampled event
    surprise: float  # mean negative log-likelihood per event at T = 1 (nats)
    entropy: float  # mean entropy per event at T = 1 (nats)
    interrupted: bool
    tempo_factor: float
    pitches: tuple[int, ...]
    rerolled: bool = False  # a re-roll: started by the command, not after a gap (its latency means nothing)


@dataclass(frozen=True, slots=True)
class StateChanged:
    temperature: float
    mode: str
    paused: bool
    follow: float = 0.0
    key: tuple[int, str] | None = None  # (root pitch class, mode) the answers keep to, or None


@dataclass(frozen=True, slots=True)
class TransportChanged:
    """Tempo and position of the clock answers keep time with (every beat, and on Start/Stop)."""

    transport: Transport


@dataclass(frozen=True, slots=True)
class PlayerNoteOn:
    """The player struck a key (its `NotePlayed` follows when it ends): for showing held notes."""

    pitch: int
    velocity: int
    start: float


@dataclass(frozen=True, slots=True)
class Message:
    text: str


@dataclass(frozen=True, slots=True)
class LearnedControl:
    """MIDI learn found a control; the front end saves it (file I/O stays off the engine thread)."""

    learned: Any


@dataclass(frozen=True, slots=True)
class Crashed:
    error: str


# -- the engine ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Undo:
    """What an answer begun before its gap ended changed: taken back if the player plays on."""

    snapshot: SeedSnapshot
    last_onset: float | None
    model_velocity: float | None
    rng_state: dict[str, Any]
    reply_start: tuple[SeedSnapshot, float | None] | None


@dataclass
class _Reply:
    gap_end: float
    notes_left: int
    deadline: float
    cursor: float | None = None  # onset of the last scheduled note
    first_sent: float | None = None
    sampled: int = 0
    nll: float = 0.0
    entropy: float = 0.0
    model_s: float = 0.0
    winding_down: bool = False
    pitches: list[int] = field(default_factory=list)
    rerolled: bool = False
    pulse: float | None = None  # synced: grid position (clock pulses) of the last scheduled note
    held: tuple[Any, float] | None = None  # synced: a sampled note waiting for its grid point
    undo: _Undo | None = None  # begun before its gap ended, and that gap has not ended yet
    onsets: int = 0  # distinct onsets scheduled so far: where the answer is in the player's dynamic shape


class Engine:
    """Owns the tracker, the rolling seed and the scheduler; runs in one thread."""

    def __init__(
        self,
        model: LoadedModel,
        send: Callable[[Sequence[int]], object],
        settings: EngineSettings | None = None,
        controls: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or EngineSettings()
        self.clock = clock
        self.improviser = Improviser(model, self.settings.seed_events)
        self.improviser.warm_up()  # TorchScript optimises on the first calls: not during the first answer
        self.tracker = NoteTracker()
        self.controls = controls
        self.learner: Any = None
        self.events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._input: queue.Queue[tuple[Sequence[int], float]] = queue.Queue(INPUT_QUEUE_SIZE)
        self._commands: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.scheduler = Scheduler(send, self.settings.max_hold_s, self._note_sent)
        self.rng = np.random.default_rng(self.settings.random_seed)
        self.temperature = self.settings.temperature
        self.mode = self.settings.mode
        self.paused = False
        self.follow = self.settings.follow
        self.style = StyleMemory(self.improviser.bins.n_step)
        self.constraints = Constraints(*self.settings.pitch_range, self.settings.key, self.settings.max_polyphony)
        self._pitch_mask = self.constraints.pitch_mask()
        self.dropped_input = 0
        self.late_notes = 0  # answer notes sent more than LATE_NOTE_S after their time
        self.ignored_echoes = 0
        self._pending: list[list[Any]] = []  # [start, pitch, velocity, end | None], onset order
        self._last_onset: float | None = None  # real time of the last event the model saw
        self._iois: deque[float] = deque(maxlen=16)
        self._last_cluster_start: float | None = None
        self._player_velocity = float(REFERENCE_VELOCITY)
        self._model_velocity: float | None = None  # running mean of the model's own velocities
        self.tempo_factor = 1.0
        self._phrase_new_notes = 0
        self._next_stale_check = 0.0
        self._reply: _Reply | None = None
        self._reply_start: tuple[SeedSnapshot, float | None] | None = None  # for `reroll`
        self._recent_player: deque[tuple[int, float]] = deque(maxlen=KEY_LOCK_NOTES)  # (pitch, duration)
        self._recent_chords: deque[int] = deque(maxlen=CHORD_MEMORY)  # notes per onset the player struck
        self._dynamics: list[float] = []  # the player's last phrase: mean velocity per onset
        self._sent_recently: dict[tuple[int, bool], tuple[float, int]] = {}  # (pitch, on?) -> (time, velocity)
        self._echo_held: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failed: BaseException | None = None
        self.follower = ClockFollower() if self.settings.sync == "clock" else None
        self.master: ClockMaster | None = None  # made when the loop starts: its first pulse is then
        self._clock_running = False  # as last told to the front end

    # -- called from other threads ------------------------------------------------

    def push(self, data: Sequence[int], time_s: float) -> None:
        """The MIDI input callback: enqueue and return at once."""
        try:
            self._input.put_nowait((data, time_s))
        except queue.Full:
            self.dropped_input += 1

    def command(self, name: str, value: Any = None) -> None:
        """Ask the engine thread to do something: temperature, mode, pause, panic, reset, ..."""
        self._commands.put((name, value))
        try:
            self._input.put_nowait(_WAKE)  # the loop sleeps on the input queue: act now, not within 50 ms
        except queue.Full:
            pass  # it is busy with input anyway

    def key(self, pitch: int, velocity: int) -> None:
        """A key of the computer-keyboard piano (velocity 0: released), played as the player's and sounded."""
        self.command("key", (pitch, velocity))

    def start(self) -> None:
        # Everything loaded so far (torch, the model) lives as long as the session: keep it out of
        # the cyclic garbage collector's full passes, which would otherwise pause the loop for ms.
        gc.freeze()
        self._thread = threading.Thread(target=self.run, name="improv-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the loop, then release every note (also when the thread is gone or stuck)."""
        self._stop.set()
        self.scheduler.panic()  # now, whatever the wait below meets
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.scheduler.panic()  # and what the loop's last pass may have struck meanwhile
        if self.master is not None and self.master.playing:
            self.master.playing = False
            self.scheduler.send_now([STOP])

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the loop -------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._start_clock(self.clock())
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
            self.scheduler.panic()
            self.events.put(Crashed(f"{type(error).__name__}: {error}"))

    def _wait_time(self, now: float) -> float:
        deadlines = [now + 0.05]
        due = self.scheduler.next_due()
        if due is not None:
            deadlines.append(due - EARLY_WAKE_S)
        gap_end = self._gap_end(now)
        if gap_end is not None:
            deadlines.append(gap_end - self._presample())
        if self.master is not None:
            deadlines.append(self.master.next_due())
        if self._reply is not None and self._reply.held is not None:
            deadlines.append(self._held_due(self._reply.held))
        if self._reply is not None and self._reply.notes_left > 0:
            return 0.0 if self._needs_sample(now) else min(deadlines) - now
        return max(min(deadlines) - now, 0.0)

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
                name, value = self._commands.get_nowait()
            except queue.Empty:
                break
            try:
                self._handle_command(name, value, now)
            except (TypeError, ValueError) as error:  # a bad value from a front end: say so, keep playing
                self.events.put(Message(f"{name}: {error}"))
        self._send_clock(now)
        if self.follower is not None and self.follower.running_at(now) != self._clock_running:
            self._clock_running = not self._clock_running  # Start, Stop, or the clock came or went
            self.events.put(TransportChanged(self.follower.transport(now)))
        self.scheduler.run_due(now)
        if self.tracker.sounding and now >= self._next_stale_check:
            self._next_stale_check = now + 0.5
            for note in self.tracker.expire(now, self.settings.stale_key_s):
                self._player_note_ended(note)
        self._feed_ready(now)
        gap_end = self._gap_end(now)
        if gap_end is not None and now >= gap_end - self._presample():
            self._start_reply(gap_end, now)
        elif self._reply is not None and self._reply.undo is not None:
            self._settle_early_reply(now)
        if self.mode == "duet" and not self.paused:
            self._duet(now)
        self._continue_reply(now)
        self.scheduler.run_due(self.clock())

    # -- input ------------------------------------------------------------------------

    def _handle_input(self, data: Sequence[int], t: float) -> None:
        if not data:  # a wake-up (see `command`), or nothing at all
            return
        if self.follower is not None and data and data[0] in _CLOCK_STATUSES:
            self._clock_message(data, t)
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
                    self._handle_command(str(event.action), event.value, t)
                return
        if self._is_echo(data, t):
            return
        self._player_message(data, t)

    def _player_message(self, data: Sequence[int], t: float) -> None:
        for out in self.tracker.feed_bytes(data, t):
            if isinstance(out, NoteStarted):
                self._player_note_started(out)
            else:
                self._player_note_ended(out)

    def _is_echo(self, data: Sequence[int], t: float) -> bool:
        """Our own output coming back through a loop: the same key and velocity within the echo window.

        The velocity keeps a player who strikes the key improv just played (at a
        velocity of their own) from being taken for the echo.
        """
        if len(data) < 3 or not self._sent_recently:
            return False
        kind = data[0] & 0xF0
        if kind not in (0x80, 0x90) or (data[0] & 0x0F) != self.settings.out_channel:
            return False
        pitch = data[1]
        is_on = kind == 0x90 and data[2] > 0
        sent = self._sent_recently.get((pitch, is_on))
        if (sent is not None and abs(t - sent[0]) <= self.settings.echo_window_s
                and (not is_on or data[2] == sent[1])):
            del self._sent_recently[(pitch, is_on)]
            self.ignored_echoes += 1
            if is_on:
                self._echo_held.add(pitch)
            else:
                self._echo_held.discard(pitch)
            return True
        if not is_on and pitch in self._echo_held:  # the late note-off of an echoed note
            self._echo_held.discard(pitch)
            return True
        return False

    def _player_note_started(self, note: NoteStarted) -> None:
        if self._reply is not None and self.mode == "call":
            self._end_reply(interrupted=True)
        self._pending.append([note.time, note.pitch, note.velocity, None])
        self.events.put(PlayerNoteOn(note.pitch, note.velocity, note.time))
        self._phrase_new_notes += 1
        self._player_velocity += 0.3 * (note.velocity - self._player_velocity)
        if self._last_cluster_start is None or note.time - self._last_cluster_start > CHORD_WINDOW_S:
            if self._last_cluster_start is not None:
                ioi = note.time - self._last_cluster_start
                if ioi < 2.0:  # a longer silence is a phrase boundary, not a tempo
                    self._iois.append(ioi)
                    if self.grid is None:  # with a clock, the clock sets the time scale
                        self.tempo_factor = min(max(statistics.median(self._iois) / REFERENCE_STEP_S, TEMPO_RANGE[0]),
                                                TEMPO_RANGE[1])
            self._last_cluster_start = note.time
        if self.settings.thru:
            self.scheduler.note_on_now(self.clock(), note.pitch, note.velocity, self.settings.out_channel, THRU_TAG)
            self._remember_sent(note.pitch, True, self.clock(), note.velocity)

    def _player_note_ended(self, note: Any) -> None:
        for entry in self._pending:
            if entry[1] == note.pitch and entry[3] is None and abs(entry[0] - note.start) < 1e-6:
                entry[3] = note.start + note.duration
                break
        self._recent_player.append((note.pitch, note.duration))
        self.events.put(NotePlayed("player", note.pitch, note.velocity, note.start, note.duration))
        if self.settings.thru:
            self.scheduler.note_off_now(note.pitch, self.settings.out_channel, THRU_TAG)
            self._remember_sent(note.pitch, False, self.clock(), 0)

    def _feed_ready(self, now: float, force: bool = False) -> None:
        """Feed the model whole chords, in onset-then-pitch order, once their notes have ended.

        A note held for long (or `force`) is fed with the time it has sounded so far.
        """
        while self._pending:
            first = self._pending[0][0]
            cluster = [e for e in self._pending if e[0] - first <= CHORD_WINDOW_S]
            later = len(self._pending) > len(cluster)
            if not force and any(e[3] is None for e in cluster) and not (later and now - first > 1.0):
                return
            del self._pending[: len(cluster)]
            self._recent_chords.append(len({entry[1] for entry in cluster}))
            step = 0.0 if self._last_onset is None else max(first - self._last_onset, 0.0)
            if step >= self.settings.gap_s:
                # A new phrase: the style memory learns phrases, not the pauses between them
                # (with follow up, an answer would otherwise copy the player's last pause).
                self.style.new_phrase()
                self._dynamics = []
            self._dynamics.append(statistics.fmean(entry[2] for entry in cluster))
            for i, (start, pitch, velocity, end) in enumerate(sorted(cluster, key=lambda e: e[1])):
                duration = (end if end is not None else now) - start
                self._observe(Event(
                    pitch,
                    (step if i == 0 else 0.0) / self.tempo_factor,
                    duration / self.tempo_factor,
                    self._normalised_velocity(velocity),
                ))
            self._last_onset = first

    def _observe(self, event: Event) -> None:
        """One of the player's events: into the rolling seed, and into the style memory."""
        self.improviser.observe(event)
        pitch, step, _, _ = self.improviser.seed[-1]
        self.style.learn(pitch, step)

    def _answer_constraints(self) -> Constraints:
        """The session's constraints, narrowed to the register the player has just used (± register_margin,
        inside the range) and to chords of about the player's size (+ chord_margin).

        Worked out for each sampled note (a few µs, next to the model's ~500): it follows the
        player's notes as they come, held ones included (a duet answers while they sound).
        """
        margin = self.settings.register_margin
        constraints = self.constraints
        chord_margin = self.settings.chord_margin
        if chord_margin is not None and self._recent_chords and constraints.max_polyphony is not None:
            polyphony = min(constraints.max_polyphony, max(self._recent_chords) + chord_margin)
            constraints = replace(constraints, max_polyphony=max(polyphony, 1))
        if margin and (self._recent_player or self._pending):
            pitches = [pitch for pitch, _ in self._recent_player] + [entry[1] for entry in self._pending]
            lo, hi = min(pitches) - margin, max(pitches) + margin
            if hi - lo < constraints.pitch_hi - constraints.pitch_lo:
                # Slide the window into the range rather than cut it at the edge: it keeps its
                # width, so every pitch class (and a locked key's notes) stays in it.
                shift = max(constraints.pitch_lo - lo, 0) - max(hi - constraints.pitch_hi, 0)
                narrowed = replace(constraints, pitch_lo=lo + shift, pitch_hi=hi + shift)
                try:
                    narrowed.pitch_mask()
                    constraints = narrowed
                except ValueError:  # no pitch of the locked key in there
                    pass
        return constraints

    def _normalised_velocity(self, velocity: int) -> int:
        return int(min(max(round(velocity * REFERENCE_VELOCITY / max(self._player_velocity, 1.0)), 1), 127))

    # -- replies ---------------------------------------------------------------------

    def _gap_end(self, now: float, ignore_reply: bool = False) -> float | None:
        """When the player's silence will have lasted the gap; None while no answer is due."""
        if self.mode != "call" or self.paused or not self._phrase_new_notes or (self._reply is not None and not ignore_reply):
            return None
        if self.follower is not None and not self.follower.running_at(now):
            return None  # the band stopped: silence until it starts again
        if self.tracker.sounding or self.tracker.last_activity_time is None:
            return None
        return self.tracker.last_activity_time + self.settings.gap_s

    def _start_reply(self, gap_end: float, now: float, duet: bool = False) -> None:
        self._feed_ready(now, force=not duet)
        snapshot = self.improviser.snapshot()
        undo = None
        if now < gap_end:  # early (see EngineSettings.presample_s): the phrase may not be over yet
            undo = _Undo(snapshot, self._last_onset, self._model_velocity, self.rng.bit_generator.state,
                         self._reply_start)
        else:
            self._phrase_new_notes = 0
        self._reply_start = (snapshot, self._last_onset)
        seconds = self.settings.reply_seconds
        notes = self.settings.reply_notes if not duet else 1 << 30
        self._reply = _Reply(gap_end, notes, max(now, gap_end) + seconds if seconds else math.inf, undo=undo)
        self._continue_reply(now)

    def _presample(self) -> float:
        if self.grid is not None:
            return 0.0  # on a clock, answers wait for the grid
        return min(self.settings.presample_s, self.settings.gap_s / 2)

    def _settle_early_reply(self, now: float) -> None:
        """An answer begun before its gap ended stands once the gap is over; a pedal or key moved meanwhile takes it back."""
        reply = self._reply
        assert reply is not None
        if now >= reply.gap_end:
            self._commit_early_reply(reply)
        elif self._gap_end(now, ignore_reply=True) != reply.gap_end:
            self._end_reply(interrupted=True)

    def _commit_early_reply(self, reply: _Reply) -> None:
        reply.undo = None
        self._phrase_new_notes = 0

    def _take_back(self, undo: _Undo) -> None:
        """Forget an answer that never sounded, as if it had not been begun."""
        self.scheduler.cancel(REPLY_TAG)
        self.improviser.restore(undo.snapshot)
        self._last_onset = undo.last_onset
        self._model_velocity = undo.model_velocity
        self.rng.bit_generator.state = undo.rng_state
        self._reply_start = undo.reply_start

    def _duet(self, now: float) -> None:
        """Play along while the player plays; after the gap, finish with a normal reply's length."""
        silent = (
            not self.tracker.sounding
            and self.tracker.last_activity_time is not None
            and now - self.tracker.last_activity_time >= self.settings.gap_s
        )
        if self._reply is None:
            if self.follower is not None and not self.follower.running_at(now):
                return
            if self._phrase_new_notes and not silent:
                self._start_reply(now, now, duet=True)
        elif silent and not self._reply.winding_down:
            self._reply.winding_down = True
            self._reply.notes_left = min(self._reply.notes_left, self.settings.reply_notes)

    def _needs_sample(self, now: float) -> bool:
        reply = self._reply
        if reply is None or reply.notes_left <= 0 or reply.held is not None:
            return False
        if reply.cursor is None:
            return True
        due = self.scheduler.next_due()
        if due is not None and due - now < EARLY_WAKE_S:
            return False  # a note is about to go out: send it first, sample (a millisecond's work) after
        return reply.cursor <= now + self._lookahead()

    def _lookahead(self) -> float:
        return self.settings.duet_lookahead_s if self.mode == "duet" else self.settings.lookahead_s

    def _continue_reply(self, now: float) -> None:
        """Sample the reply a little ahead of time, one event per pass, so output stays punctual."""
        reply = self._reply
        if reply is None:
            return
        grid = self.grid
        if grid is not None and not grid.running_at(now):
            self._end_reply(interrupted=True)  # the clock stopped or went away: silence
            return
        if reply.held is not None and grid is not None:
            self._place_held(reply, grid, now)
        if self._needs_sample(now):
            started = time.perf_counter()
            sampled = self.improviser.sample(self.temperature, self.rng, self._answer_constraints(), self.settings.top_p,
                                             self.style, self.follow)
            reply.model_s += time.perf_counter() - started
            reply.sampled += 1
            reply.nll += sampled.nll
            reply.entropy += sampled.entropy
            reply.pitches.append(sampled.event.pitch)
            reply.notes_left -= 1
            if grid is not None:  # on the clock's grid: placed when its grid point comes near
                reply.held = (sampled, self._grid_pulse(reply, sampled, grid, now))
                self._place_held(reply, grid, now)
            else:
                event = sampled.event
                if reply.cursor is None:
                    # when the gap ends, or at once if it has: the gap already was the wait
                    onset = max(self.clock(), reply.gap_end)
                else:
                    step = snap_to_pulse(event.step * self.tempo_factor, self._pulse_s())
                    onset = max(reply.cursor + step, now)
                    if self.mode == "duet" and self._last_onset is not None:
                        onset = max(self._last_onset + step, now)
                self._schedule(reply, sampled, onset)
        if reply.notes_left <= 0 and reply.held is None and not self.scheduler.busy(REPLY_TAG):
            self._end_reply(interrupted=False)

    def _schedule(self, reply: _Reply, sampled: Any, onset: float) -> None:
        event = sampled.event
        duration = max(event.duration * self.tempo_factor, MIN_DURATION_S)
        lo, hi = self.settings.velocity_range
        # The model's dynamics come from notated markings (mostly p-mf): keep its shape, but
        # centre it on how loud the player plays.
        if self._model_velocity is None:
            self._model_velocity = float(event.velocity)
        self._model_velocity += 0.3 * (event.velocity - self._model_velocity)
        if reply.cursor is None or onset > reply.cursor:
            reply.onsets += 1
        # The model's velocities barely vary (its training files mostly do not): an answer at one
        # loudness sounds mechanical. So it takes the dynamic shape of the player's last phrase,
        # onset by onset (cycled), with the model's accents on top.
        dynamics = self._dynamics
        loudness = dynamics[(reply.onsets - 1) % len(dynamics)] if dynamics else self._player_velocity
        velocity = int(min(max(round(event.velocity * loudness / self._model_velocity), lo), hi))
        self.scheduler.note(onset, duration, event.pitch, velocity, self.settings.out_channel, REPLY_TAG)
        reply.cursor = onset
        self._last_onset = onset
        if onset > reply.deadline:
            reply.notes_left = 0

    # -- time from a clock ---------------------------------------------------------------

    @property
    def grid(self) -> Grid | None:
        """The clock answers keep time with, once it is known; None when playing free."""
        grid: Grid | None = self.follower if self.follower is not None else self.master
        return grid if grid is not None and grid.locked else None

    def _grid_pulse(self, reply: _Reply, sampled: Any, grid: Grid, now: float) -> float:
        """Grid position (clock pulses) of a sampled answer note.

        The first starts on the next beat or bar (or now); the others follow the model's step,
        rounded to the quantize grid, chord tones on their chord's point, other notes at least
        one grid point later.
        """
        q = self.settings.quantize
        if reply.pulse is None:
            earliest = grid.pulse_at(now + SYNC_LEAD_S)
            unit = {"beat": PULSES_PER_QUARTER, "bar": PULSES_PER_QUARTER * grid.beats_per_bar}.get(
                self.settings.reply_on, q)
            return earliest if unit is None else math.ceil(earliest / unit) * unit
        assert grid.pulse_s is not None
        if sampled.tokens[1] == 0:
            return reply.pulse
        target = reply.pulse + sampled.event.step * self.tempo_factor / grid.pulse_s
        if q is None:
            return target
        return max(round(target / q), round(reply.pulse / q) + 1) * q

    def _place_held(self, reply: _Reply, grid: Grid, now: float) -> None:
        """Schedule the waiting note once its grid point is within the lookahead; the time comes
        from the clock as it is then, so a tempo change in between moves the note with the grid."""
        assert reply.held is not None
        sampled, pulse = reply.held
        onset = grid.time_of(pulse)
        if onset > now + self._lookahead():
            return
        if onset < now - LATE_NOTE_S:  # missed (a stall, or the tempo rushed): the next grid point
            q = self.settings.quantize or 1
            pulse = math.ceil(grid.pulse_at(now + SYNC_LEAD_S) / q) * q
            onset = grid.time_of(pulse)
        reply.held = None
        reply.pulse = pulse
        self._schedule(reply, sampled, max(onset, now))

    def _held_due(self, held: tuple[Any, float]) -> float:
        grid = self.grid
        return grid.time_of(held[1]) - self._lookahead() if grid is not None else self.clock() + 0.01

    def _clock_message(self, data: Sequence[int], t: float) -> None:
        assert self.follower is not None
        change = self.follower.feed(data[0], t, tuple(data[1:]))
        if change == "stop":
            self._end_reply(interrupted=True)  # Stop means silence
        if change is not None or (data[0] == CLOCK and self.follower.position % PULSES_PER_QUARTER == 0):
            self._sync_tempo(t)
            self.events.put(TransportChanged(self.follower.transport(t)))

    def _start_clock(self, now: float) -> None:
        """Be the clock: Start, then pulses from now on."""
        if self.settings.clock_out_bpm is not None and self.master is None:
            self.master = ClockMaster(self.settings.clock_out_bpm, now)
            self.scheduler.send_now([START])
            self._sync_tempo(now)

    def _send_clock(self, now: float) -> None:
        if self.settings.clock_out_bpm is None:
            return
        if self.master is None:
            self._start_clock(now)
        master = self.master
        assert master is not None
        if not master.playing:
            return
        before = master.next_pulse
        for _ in range(master.due(now)):
            self.scheduler.send_now([CLOCK])
        if master.next_pulse // PULSES_PER_QUARTER != before // PULSES_PER_QUARTER:
            self.events.put(TransportChanged(master.transport(now, master=True)))

    def _sync_tempo(self, now: float) -> None:
        """With a clock, the model's time scale follows the clock's tempo, not the player's pulse."""
        grid = self.grid
        if grid is not None and grid.pulse_s is not None:
            beat_s = grid.pulse_s * PULSES_PER_QUARTER
            self.tempo_factor = min(max(beat_s / (2 * REFERENCE_STEP_S), TEMPO_RANGE[0]), TEMPO_RANGE[1])

    def _pulse_s(self) -> float | None:
        """The player's pulse: the median interval between their recent onsets."""
        return statistics.median(self._iois) if self._iois else None

    def _end_reply(self, interrupted: bool) -> None:
        reply = self._reply
        if reply is None:
            return
        self._reply = None
        if reply.undo is not None:  # begun early and the phrase went on: it never was
            self._take_back(reply.undo)
            return
        if interrupted:
            self.scheduler.cancel(REPLY_TAG)
        latency = (reply.first_sent - reply.gap_end) * 1000 if reply.first_sent is not None else math.nan
        n = max(reply.sampled, 1)
        self.events.put(ReplyDone(
            reply.sampled, self.temperature, latency, reply.model_s / n * 1000, reply.nll / n, reply.entropy / n,
            interrupted, self.tempo_factor, tuple(reply.pitches), reply.rerolled,
        ))

    def _note_sent(self, sent: Sent) -> None:
        if sent.tag == REPLY_TAG:
            if sent.sent - sent.scheduled > LATE_NOTE_S:
                self.late_notes += 1
            if self._reply is not None and self._reply.first_sent is None:
                self._reply.first_sent = sent.sent
                if self._reply.undo is not None:  # it sounded: it can no longer be taken back
                    self._commit_early_reply(self._reply)
            self._remember_sent(sent.pitch, True, sent.sent, sent.velocity)
            self.events.put(NotePlayed("improv", sent.pitch, sent.velocity, sent.sent, sent.duration))

    def _remember_sent(self, pitch: int, is_on: bool, t: float, velocity: int) -> None:
        self._sent_recently[(pitch, is_on)] = (t, velocity)
        if not is_on:
            return
        if len(self._sent_recently) > 256:  # forget what can no longer come back
            horizon = t - 1.0
            self._sent_recently = {k: v for k, v in self._sent_recently.items() if v[0] >= horizon}

    def _play_key(self, pitch: int, velocity: int, now: float) -> None:
        """The computer-keyboard piano: sounded here (so a loop's echo of it is known) and heard as the player."""
        channel = self.settings.out_channel
        if not self.settings.thru:  # with thru, the player's path sounds it
            if velocity > 0:
                self.scheduler.note_on_now(now, pitch, velocity, channel, PIANO_TAG)
            else:
                self.scheduler.note_off_now(pitch, channel, PIANO_TAG)
            self._remember_sent(pitch, velocity > 0, now, velocity)
        self._player_message((NOTE_ON, pitch, velocity) if velocity > 0 else (NOTE_OFF, pitch, 0), now)

    # -- controls and commands ---------------------------------------------------------

    def _handle_command(self, name: str, value: Any, now: float) -> None:
        if self._reply is not None and self._reply.undo is not None and name != "learn":
            # An opening sampled early, before this: sample it again after (after a model change too:
            # its undo holds a state of the old model).
            self._end_reply(interrupted=True)
        if name == "temperature":
            self.temperature = check_temperature(value)
        elif name == "key":
            pitch, velocity = value
            if not (0 <= pitch <= 127 and 0 <= velocity <= 127):
                raise ValueError(f"no such key: pitch {pitch}, velocity {velocity}")
            self._play_key(int(pitch), int(velocity), now)
            return  # a note, not a change of state
        elif name == "temperature_step":
            self.temperature = nudge_temperature(self.temperature, value)
        elif name == "mode":
            self.mode = value if value in MODES else ("duet" if self.mode == "call" else "call")
            if self._reply is not None:
                self._end_reply(interrupted=True)
        elif name == "pause":
            self.paused = (not self.paused) if value is None else bool(value)
            if self.paused and self._reply is not None:
                self._end_reply(interrupted=True)
        elif name == "panic":
            self._end_reply(interrupted=True)
            self.scheduler.panic()
        elif name == "reset":
            self._end_reply(interrupted=True)
            self._pending.clear()
            self._recent_player.clear()  # forgotten too: the register and the key to lock come from them
            self._recent_chords.clear()
            self._dynamics = []
            self.improviser.reset()
            self.style.new_phrase()
            self._last_onset = None
            self._reply_start = None
        elif name == "reply_length":
            self.settings = replace(self.settings, reply_notes=int(value))
        elif name == "follow":
            self.follow = check_follow(value)
        elif name == "follow_step":
            self.follow = min(max(round(self.follow + value, 2), 0.0), 1.0)
        elif name == "learn":
            self.learner = value
            return
        elif name == "model":
            self.improviser.set_model(value)
            if self.improviser.bins.n_step != self.style.n_step:  # other bins: the memory's tokens mean nothing now
                self.style = StyleMemory(self.improviser.bins.n_step)
            self._reply_start = None  # a state of the old model cannot be restored into the new one
        elif name == "reroll":
            if not self._reroll(now):
                return
        elif name == "key_lock":
            if not self._set_key(value):
                return
        else:
            self.events.put(Message(f"unknown command {name!r}"))
            return
        self.events.put(StateChanged(self.temperature, self.mode, self.paused, self.follow, self.constraints.key))

    def _reroll(self, now: float) -> bool:
        """Play the last reply again, resampled from the seed state it started from."""
        if self._reply_start is None:
            self.events.put(Message("nothing to re-roll yet: play a phrase and let improv answer"))
            return False
        if self.mode == "call" and self._phrase_new_notes and self._reply is None:
            # Its seed state is from before what the player has played since: re-rolling would forget that.
            # (A duet's answer is played over the player's notes: re-rolling it forgets them by design.)
            self.events.put(Message("you have played since the last answer: re-rolling it would forget that"))
            return False
        self._end_reply(interrupted=True)
        snapshot, last_onset = self._reply_start
        self.improviser.restore(snapshot)
        self._last_onset = last_onset
        self._phrase_new_notes = 0
        seconds = self.settings.reply_seconds
        self._reply = _Reply(now, self.settings.reply_notes, now + seconds if seconds else math.inf, rerolled=True)
        self._continue_reply(now)
        return True

    def _set_key(self, value: Any) -> bool:
        """`key_lock`: None toggles (lock to the key of the player's last notes, or unlock);
        False unlocks; (root, mode) locks to that key."""
        if value is None:
            if self.constraints.key is not None:
                key = None
            else:
                key = estimate_key(self._recent_player) if len(self._recent_player) >= KEY_LOCK_MIN_NOTES else None
                if key is None:
                    self.events.put(Message(f"play at least {KEY_LOCK_MIN_NOTES} notes first: the key comes from them"))
                    return False
        elif value is False:
            key = None
        else:
            key = (int(value[0]) % 12, str(value[1]))
        constraints = replace(self.constraints, key=key)
        try:
            mask = constraints.pitch_mask()
        except ValueError as error:  # a key with no pitch in the range
            self.events.put(Message(str(error)))
            return False
        self.constraints = constraints
        self._pitch_mask = mask
        if key is None:
            self.events.put(Message("key unlocked: answers may use any pitch"))
        else:
            self.events.put(Message(f"key locked to {sampling.format_key(*key)}"
                                    + (f" from your last {len(self._recent_player)} notes" if value is None else "")))
        return True
