"""What passes between the engine and a front end: typed commands down, a state snapshot and events up.

A front end builds a command (or names one: `command_from("temperature", 1.2)`), hands it to
`Engine.send`, and reads what happened from the engine's event queue. Commands check their values
when they are made, so a bad value fails in the caller's thread with a one-line message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from improv.live.clock import Transport
from improv.model.style import check_follow
from improv.model.temperature import check_temperature

MODES = ("call", "duet")

# -- commands: what a front end asks the engine to do --------------------------------------


@dataclass(frozen=True, slots=True)
class SetTemperature:
    value: float

    def __post_init__(self) -> None:
        check_temperature(self.value)


@dataclass(frozen=True, slots=True)
class NudgeTemperature:
    step: float


@dataclass(frozen=True, slots=True)
class SetMode:
    mode: str | None = None  # None: the other mode

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")


@dataclass(frozen=True, slots=True)
class SetPaused:
    paused: bool | None = None  # None: toggle


@dataclass(frozen=True, slots=True)
class Panic:
    """All notes off now, and the answer under way stops."""


@dataclass(frozen=True, slots=True)
class Reset:
    """Forget what was heard: the seed, the style memory, the player's recent notes."""


@dataclass(frozen=True, slots=True)
class SetReplyLength:
    notes: int


@dataclass(frozen=True, slots=True)
class SetFollow:
    value: float

    def __post_init__(self) -> None:
        check_follow(self.value)


@dataclass(frozen=True, slots=True)
class NudgeFollow:
    step: float


@dataclass(frozen=True, slots=True)
class NudgeTempo:
    """Move a shared (Ableton Link) session's tempo by `step_bpm`, for every peer."""

    step_bpm: float


@dataclass(frozen=True, slots=True)
class Learn:
    learner: Any  # a config.Learner listening for the next control, or None to stop listening


@dataclass(frozen=True, slots=True)
class SetModel:
    model: Any  # a LoadedModel


@dataclass(frozen=True, slots=True)
class Reroll:
    """Play the last answer again, resampled from the seed state it started from."""


@dataclass(frozen=True, slots=True)
class LockKey:
    key: Any = None  # None: toggle (lock to the key of the player's last notes); False: unlock; (root, mode)


@dataclass(frozen=True, slots=True)
class PlayKey:
    """A key of the computer-keyboard piano (velocity 0: released), played as the player's and sounded."""

    pitch: int
    velocity: int

    def __post_init__(self) -> None:
        if not (0 <= self.pitch <= 127 and 0 <= self.velocity <= 127):
            raise ValueError(f"no such key: pitch {self.pitch}, velocity {self.velocity}")


Command: TypeAlias = (SetTemperature | NudgeTemperature | SetMode | SetPaused | Panic | Reset | SetReplyLength
                      | SetFollow | NudgeFollow | Learn | SetModel | Reroll | LockKey | PlayKey | NudgeTempo)

# The names a front end or a MIDI control uses (config.Action values among them), and how each builds its command.
COMMANDS: dict[str, Callable[[Any], Command]] = {
    "temperature": lambda v: SetTemperature(v),
    "temperature_step": lambda v: NudgeTemperature(v),
    "mode": lambda v: SetMode(v if v in MODES else None),
    "pause": lambda v: SetPaused(None if v is None else bool(v)),
    "panic": lambda v: Panic(),
    "reset": lambda v: Reset(),
    "reply_length": lambda v: SetReplyLength(int(v)),
    "follow": lambda v: SetFollow(v),
    "follow_step": lambda v: NudgeFollow(v),
    "learn": lambda v: Learn(v),
    "model": lambda v: SetModel(v),
    "reroll": lambda v: Reroll(),
    "key_lock": lambda v: LockKey(v),
    "key": lambda v: PlayKey(int(v[0]), int(v[1])),
    "tempo_step": lambda v: NudgeTempo(float(v)),
}


def command_from(name: str, value: Any = None) -> Command:
    """The typed command a name and value stand for; ValueError (or TypeError) for a bad one."""
    make = COMMANDS.get(name)
    if make is None:
        raise ValueError(f"unknown command {name!r}")
    return make(value)


# -- what the engine tells the outside world ----------------------------------------------


@dataclass(frozen=True, slots=True)
class EngineState:
    """A snapshot a front end may read from any thread (`Engine.state()`)."""

    temperature: float
    mode: str
    paused: bool
    follow: float
    key: tuple[int, str] | None
    late_notes: int  # answer notes sent late (see engine.LATE_NOTE_S)
    dropped_input: int  # MIDI input lost to a full queue
    ignored_echoes: int  # our own notes heard back through a loop
    send_errors: int  # messages the output port refused
    sounding: int  # notes sounding at improv's output now
    channels: tuple[int, ...]  # the channels notes went out on so far


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
class AnswerPlanned:
    """The shape the planner gave the answer beginning now (`planner.Plan.readout`), for the screen."""

    readout: str


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
