"""improv's side: when to answer, the answer under way, sampled a few notes ahead and handed to the output.

In call mode an answer begins when the player has been silent for the gap; its opening may be
sampled `presample_s` early (and taken back without a trace if the player plays on). In duet mode
improv plays along while the player plays and finishes with a normal answer's length. The model's
steps are multiplied by the timing's tempo factor on the way out, and its velocities take the
shape of the player's last phrase.
"""

from __future__ import annotations

import math
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from improv.live.call import describe_call
from improv.live.echo import EchoFilter
from improv.live.output import Output, Sent
from improv.live.player import Player
from improv.live.planner import Plan
from improv.live.protocol import AnswerPlanned, Message, NotePlayed, ReplyDone
from improv.live.rules import accent_rule, snap_to_pulse
from improv.live.settings import EngineSettings
from improv.live.timing import LATE_NOTE_S, FreeTime
from improv.model import sampling
from improv.model.rolling_seed import Constraints, Improviser, SeedSnapshot, estimate_key

REPLY_TAG = "reply"
MIN_DURATION_S = 0.03
EARLY_WAKE_S = 0.0015  # wake this long before a note is due and stay awake: the OS may wake a thread late
KEY_LOCK_MIN_NOTES = 3


def key_lock(constraints: Constraints, value: Any, recent: Sequence[tuple[int, float]]) -> tuple[Constraints | None, str]:
    """The constraints `LockKey(value)` asks for, or None if it cannot be done, and the line that says so.

    None toggles: lock to the key of the player's `recent` (pitch, duration) notes, or unlock;
    False unlocks; (root, mode) locks to that key.
    """
    if value is None:
        if constraints.key is not None:
            key = None
        else:
            key = estimate_key(recent) if len(recent) >= KEY_LOCK_MIN_NOTES else None
            if key is None:
                return None, f"play at least {KEY_LOCK_MIN_NOTES} notes first: the key comes from them"
    elif value is False:
        key = None
    else:
        key = (int(value[0]) % 12, str(value[1]))
    locked = replace(constraints, key=key)
    try:
        locked.pitch_mask()
    except ValueError as error:  # a key with no pitch in the range
        return None, str(error)
    if key is None:
        return locked, "key unlocked: answers may use any pitch"
    return locked, (f"key locked to {sampling.format_key(*key)}"
                    + (f" from your last {len(recent)} notes" if value is None else ""))


@dataclass(frozen=True, slots=True)
class _Undo:
    """What an answer begun before its gap ended changed: taken back if the player plays on."""

    snapshot: SeedSnapshot
    last_onset: float | None
    model_velocity: float | None
    rng_state: dict[str, Any]
    reply_start: tuple[SeedSnapshot, float | None] | None


@dataclass
class Reply:
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
    pulse: float | None = None  # on a grid: position (clock pulses) of the last scheduled note
    held: tuple[Any, float] | None = None  # on a grid: a sampled note waiting for its grid point
    undo: _Undo | None = None  # begun before its gap ended, and that gap has not ended yet
    onsets: int = 0  # distinct onsets scheduled so far: where the answer is in the player's dynamic shape
    accent: float | None = None  # the last note's accent, a factor on the player's loudness (`accent_rule`)


class Answer:
    """The answer under way and the knobs that shape it (temperature, follow, mode, pause, key)."""

    def __init__(self, settings: EngineSettings, player: Player, timing: FreeTime, output: Output,
                 echo: EchoFilter, improviser: Improviser, events: queue.SimpleQueue[Any],
                 clock: Callable[[], float]) -> None:
        self.settings = settings
        self.player = player
        self.timing = timing
        self.output = output
        self.echo = echo
        self.improviser = improviser
        self.events = events
        self.clock = clock
        self.rng = np.random.default_rng(settings.random_seed)
        self.temperature = settings.temperature
        self.mode = settings.mode
        self.paused = False
        self.follow = settings.follow
        self.constraints = Constraints(*settings.pitch_range, settings.key, settings.max_polyphony)
        self.late_notes = 0  # answer notes sent more than LATE_NOTE_S after their time
        self.reply: Reply | None = None
        self.reply_start: tuple[SeedSnapshot, float | None] | None = None  # for `reroll`
        self.plan: Plan | None = None  # the shape of the answer under way (or the last), from its call
        self._model_velocity: float | None = None  # running mean of the model's own velocities

    # -- one pass of the engine's loop ---------------------------------------------------

    def step(self, now: float) -> None:
        """Begin an answer when the gap ends (or settle one begun early), play along in a duet, sample ahead."""
        gap_end = self.gap_end(now)
        if gap_end is not None and now >= gap_end - self.presample_s():
            self.start(gap_end, now)
        elif self.reply is not None and self.reply.undo is not None:
            self._settle_early(now)
        if self.mode == "duet" and not self.paused:
            self._duet(now)
        self.go_on(now)

    def wait_s(self, now: float, deadlines: list[float]) -> float:
        """How long the loop may sleep, given the other parts' `deadlines`."""
        gap_end = self.gap_end(now)
        if gap_end is not None:
            deadlines.append(gap_end - self.presample_s())
        reply = self.reply
        if reply is not None and reply.held is not None:
            deadlines.append(self.timing.grid_due(reply.held[1], self._lookahead(), now))
        if reply is not None and reply.notes_left > 0:
            return 0.0 if self._needs_sample(now) else min(deadlines) - now
        return max(min(deadlines) - now, 0.0)

    def heard(self, sent: list[Sent]) -> None:
        """The output's note-ons since the last pass: an answer's first note commits it; all are shown."""
        for note in sent:
            if note.tag != REPLY_TAG:
                continue
            if note.sent - note.scheduled > LATE_NOTE_S:
                self.late_notes += 1
            reply = self.reply
            if reply is not None and reply.first_sent is None:
                reply.first_sent = note.sent
                if reply.undo is not None:  # it sounded: it can no longer be taken back
                    self._commit_early(reply)
            self.echo.remember(note.pitch, True, note.sent, note.velocity)
            self.events.put(NotePlayed("improv", note.pitch, note.velocity, note.sent, note.duration))

    # -- beginning and ending --------------------------------------------------------------

    def gap_end(self, now: float, ignore_reply: bool = False) -> float | None:
        """When the player's silence will have lasted the gap; None while no answer is due."""
        if self.mode != "call" or self.paused or not self.player.new_notes or (self.reply is not None and not ignore_reply):
            return None
        if not self.timing.may_answer(now):
            return None  # the band stopped: silence until it starts again
        tracker = self.player.tracker
        if tracker.sounding or tracker.last_activity_time is None:
            return None
        return tracker.last_activity_time + self.settings.gap_s

    def presample_s(self) -> float:
        return self.timing.presample_s(min(self.settings.presample_s, self.settings.gap_s / 2))

    def start(self, gap_end: float, now: float, duet: bool = False) -> None:
        player = self.player
        player.feed_ready(now, force=not duet)
        snapshot = self.improviser.snapshot()
        undo = None
        if now < gap_end:  # early (see EngineSettings.presample_s): the phrase may not be over yet
            undo = _Undo(snapshot, player.last_onset, self._model_velocity, self.rng.bit_generator.state,
                         self.reply_start)
        else:
            player.new_notes = 0
        self.reply_start = (snapshot, player.last_onset)
        seconds = self.settings.reply_seconds
        notes = self.settings.reply_notes if not duet else 1 << 30
        self.plan = self._plan(now) if not duet else None
        if self.plan is not None:
            notes = self.plan.notes
        self.reply = Reply(gap_end, notes, max(now, gap_end) + seconds if seconds else math.inf, undo=undo)
        self.go_on(now)

    def _plan(self, now: float) -> Plan | None:
        """The shape of the answer to the call just played (None with the planner off, or no call)."""
        settings = self.settings
        call = describe_call(self.player.call_notes(now)) if settings.plan is not None else None
        if call is None or settings.plan is None:
            return None
        plan = Plan(call, settings.plan, settings.reply_notes, self.improviser.bins.step_s,
                    self.timing.tempo_factor, self.constraints.key)
        self.events.put(AnswerPlanned(plan.readout()))
        return plan

    def reroll(self, now: float) -> bool:
        """Play the last reply again, resampled from the seed state it started from."""
        if self.reply_start is None:
            self.events.put(Message("nothing to re-roll yet: play a phrase and let improv answer"))
            return False
        if self.mode == "call" and self.player.new_notes and self.reply is None:
            # Its seed state is from before what the player has played since: re-rolling would forget that.
            # (A duet's answer is played over the player's notes: re-rolling it forgets them by design.)
            self.events.put(Message("you have played since the last answer: re-rolling it would forget that"))
            return False
        self.end(interrupted=True)
        snapshot, last_onset = self.reply_start
        self.improviser.restore(snapshot)
        self.player.last_onset = last_onset
        self.player.new_notes = 0
        seconds = self.settings.reply_seconds
        notes = self.settings.reply_notes
        if self.plan is not None:
            self.plan.restart()
            notes = self.plan.notes
        self.reply = Reply(now, notes, now + seconds if seconds else math.inf, rerolled=True)
        self.go_on(now)
        return True

    def end(self, interrupted: bool) -> None:
        reply = self.reply
        if reply is None:
            return
        self.reply = None
        if reply.undo is not None:  # begun early and the phrase went on: it never was
            self._take_back(reply.undo)
            return
        if interrupted:
            self.output.cancel(REPLY_TAG)
        latency = (reply.first_sent - reply.gap_end) * 1000 if reply.first_sent is not None else math.nan
        n = max(reply.sampled, 1)
        self.events.put(ReplyDone(
            reply.sampled, self.temperature, latency, reply.model_s / n * 1000, reply.nll / n, reply.entropy / n,
            interrupted, self.timing.tempo_factor, tuple(reply.pitches), reply.rerolled,
        ))

    def take_back_early(self) -> None:
        """An opening sampled early is sampled again after a command (after a model change too: its undo
        holds a state of the old model)."""
        if self.reply is not None and self.reply.undo is not None:
            self.end(interrupted=True)

    def _settle_early(self, now: float) -> None:
        """An answer begun before its gap ended stands once the gap is over; a pedal or key moved meanwhile takes it back."""
        reply = self.reply
        assert reply is not None
        if now >= reply.gap_end:
            self._commit_early(reply)
        elif self.gap_end(now, ignore_reply=True) != reply.gap_end:
            self.end(interrupted=True)

    def _commit_early(self, reply: Reply) -> None:
        reply.undo = None
        self.player.new_notes = 0

    def _take_back(self, undo: _Undo) -> None:
        """Forget an answer that never sounded, as if it had not been begun."""
        self.output.cancel(REPLY_TAG)
        self.improviser.restore(undo.snapshot)
        self.player.last_onset = undo.last_onset
        self._model_velocity = undo.model_velocity
        self.rng.bit_generator.state = undo.rng_state
        self.reply_start = undo.reply_start

    def _duet(self, now: float) -> None:
        """Play along while the player plays; after the gap, finish with a normal reply's length."""
        tracker = self.player.tracker
        silent = (not tracker.sounding and tracker.last_activity_time is not None
                  and now - tracker.last_activity_time >= self.settings.gap_s)
        if self.reply is None:
            if not self.timing.may_answer(now):
                return
            if self.player.new_notes and not silent:
                self.start(now, now, duet=True)
        elif silent and not self.reply.winding_down:
            self.reply.winding_down = True
            self.reply.notes_left = min(self.reply.notes_left, self.settings.reply_notes)

    # -- sampling ahead and placing notes ---------------------------------------------------------

    def _needs_sample(self, now: float) -> bool:
        reply = self.reply
        if reply is None or reply.notes_left <= 0 or reply.held is not None:
            return False
        if reply.cursor is None:
            return True
        due = self.output.next_due()
        if due is not None and due - now < EARLY_WAKE_S:
            return False  # a note is about to go out: send it first, sample (a millisecond's work) after
        return reply.cursor <= now + self._lookahead()

    def _lookahead(self) -> float:
        return self.settings.duet_lookahead_s if self.mode == "duet" else self.settings.lookahead_s

    def go_on(self, now: float) -> None:
        """Sample the reply a little ahead of time, one event per pass, so output stays punctual."""
        reply = self.reply
        if reply is None:
            return
        if not self.timing.running_at(now):
            self.end(interrupted=True)  # the clock stopped or went away: silence
            return
        if reply.held is not None:
            self._place_held(reply, now)
        if self._needs_sample(now):
            started = time.perf_counter()
            constraints = self.player.answer_constraints(self.constraints)
            plan = self.plan if self.mode == "call" else None
            if plan is not None:
                constraints = plan.constraints(constraints, self.temperature)
            sampled = self.improviser.sample(self.temperature, self.rng, constraints,
                                             style=self.player.style, follow=self.follow)
            if plan is not None:
                plan.played(sampled.event.pitch, sampled.tokens[1] if reply.sampled > 0 else 1)
            reply.model_s += time.perf_counter() - started
            reply.sampled += 1
            reply.nll += sampled.nll
            reply.entropy += sampled.entropy
            reply.pitches.append(sampled.event.pitch)
            reply.notes_left -= 1
            event = sampled.event
            pulse = self.timing.grid_pulse(reply.pulse, event.step, sampled.tokens[1] == 0, now,
                                           self.settings.quantize, self.settings.reply_on)
            if pulse is not None:  # on a grid: placed when its grid point comes near
                reply.held = (sampled, pulse)
                self._place_held(reply, now)
            else:
                if reply.cursor is None:
                    # when the gap ends, or at once if it has: the gap already was the wait
                    onset = max(self.clock(), reply.gap_end)
                else:
                    scale, pulse_s = self._time_scale()
                    step = snap_to_pulse(event.step * scale, pulse_s)
                    onset = max(reply.cursor + step, now)
                    if self.mode == "duet" and self.player.last_onset is not None:
                        onset = max(self.player.last_onset + step, now)
                self._schedule(reply, sampled, onset)
        if reply.notes_left <= 0 and reply.held is None and not self.output.busy(REPLY_TAG):
            self.end(interrupted=False)

    def _time_scale(self) -> tuple[float, float | None]:
        """Seconds of the answer per second of the model, and the pulse its steps snap to: the call's
        (from the plan) in free time, the timing's on a grid or with no plan."""
        plan = self.plan
        if plan is not None and self.mode == "call" and self.timing.grid() is None:
            return plan.time_scale, plan.pulse_s
        return self.timing.tempo_factor, self.timing.player_pulse_s()

    def _place_held(self, reply: Reply, now: float) -> None:
        assert reply.held is not None
        sampled, pulse = reply.held
        placed = self.timing.grid_onset(pulse, now, self._lookahead(), self.settings.quantize)
        if placed is None:
            return
        reply.held = None
        onset, reply.pulse = placed
        self._schedule(reply, sampled, onset)

    def _schedule(self, reply: Reply, sampled: Any, onset: float) -> None:
        event = sampled.event
        duration = max(event.duration * self._time_scale()[0], MIN_DURATION_S)
        lo, hi = self.settings.velocity_range
        # The model's dynamics come from notated markings (mostly p-mf): keep its shape, but
        # centre it on how loud the player plays.
        if self._model_velocity is None:
            self._model_velocity = float(event.velocity)
        self._model_velocity += 0.3 * (event.velocity - self._model_velocity)
        if reply.cursor is None or onset > reply.cursor:
            reply.onsets += 1
        # An answer takes the dynamic shape of the player's last phrase, onset by onset (cycled), with
        # the model's accents on top, within the plan's share of it.
        dynamics = self.player.dynamics
        loudness = dynamics[(reply.onsets - 1) % len(dynamics)] if dynamics else self.player.velocity
        share = self.settings.plan.accent if self.settings.plan is not None else None
        reply.accent = accent_rule(event.velocity, self._model_velocity, reply.accent, share)
        velocity = int(min(max(round(loudness * reply.accent), lo), hi))
        self.output.note(onset, duration, event.pitch, velocity, self.settings.out_channel, REPLY_TAG)
        reply.cursor = onset
        self.player.last_onset = onset
        if onset > reply.deadline:
            reply.notes_left = 0
