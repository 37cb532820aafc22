"""The control surface: knobs, buttons and keys that play improv instead of notes.

Three parts, all pure except the two file functions:

- `ControlMap.match` reads one raw MIDI message (as python-rtmidi delivers
  it) and says whether it is a control and what it asks for. It runs in the
  input path before the note tracker, so everything it returns is computed
  when the map is built: a match is a few integer operations and a list look-up.
- `Learner` is armed for one action and turns the next CC moved (or, for a
  trigger action, the next key struck) into a mapping.
- `load_config` / `save_config` keep the mappings and a few engine defaults in
  a TOML file in the user's config directory (`default_config_path()`).

Actions (`Action`) either take a value or are triggers:

==============  ========  =====================================================
action          takes     value in the `ControlEvent`
==============  ========  =====================================================
temperature     CC only   T = sampling.temperature_from_cc(cc, lo, mid, hi):
                          0 -> 0.1, 64 -> 1.0, 127 -> 3.0 by default, log scale
reply_length    CC only   notes per reply (int), log scale 0 -> 4, 64 -> 16,
                          127 -> 64 by default: each doubling of the length
                          takes the same knob travel
follow          CC only   cc / 127, from 0.0 to 1.0
panic           trigger   None: silence everything now
mode            trigger   None: toggle call / duet
reset           trigger   None: forget the rolling seed
pause           trigger   None: toggle listening without replying
==============  ========  =====================================================

A trigger mapped to a CC fires when the value rises from below 64 to 64 or
more, so a momentary button sending 127 then 0 fires once (a latching button
fires on every other press). Mapped to a note, it fires on the note-on. The
button's release, repeated high values, and the key's note-off and
polyphonic aftertouch are consumed without firing: `match` returns `CONSUMED`
(a `ControlEvent` whose action is None), so a control key never sounds.

The mappings are kept in the config file: see `improv.config`.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple, TypeAlias

from improv.errors import ConfigError
from improv.midi.status import CONTROL_CHANGE as _CONTROL_CHANGE
from improv.midi.status import NOTE_ON as _NOTE_ON
from improv.model.temperature import check_temperature

__all__ = [
    "DEFAULT_CONTROLS",
    "Action",
    "Learned",
    "Learner",
    "Source",
    "check_cc_number",
    "check_int",
    "check_reply_bounds",
    "check_temperature_bounds",
    "follow_from_cc",
    "reply_notes_from_cc",
    "show_value",
]

CHANNELS = 16
_DATA_MAX = 127
_TRIGGER_ON = 64  # a CC trigger is "pressed" from this value up
_FIRST_MODE_CC = 120  # 120-127 are channel mode messages (all notes off, ...)


# -- checks -----------------------------------------------------------------------


def show_value(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_int(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an integer {lo}-{hi}, got {show_value(value)}")
    number = int(value)
    if not lo <= number <= hi:
        raise ConfigError(f"{name} must be {lo}-{hi}, got {number}")
    return number


# -- actions and sources -----------------------------------------------------------


class Action(StrEnum):
    """What a control does; see the table in the module docstring."""

    TEMPERATURE = "temperature"
    REPLY_LENGTH = "reply_length"
    FOLLOW = "follow"
    PANIC = "panic"
    MODE = "mode"
    RESET = "reset"
    PAUSE = "pause"

    @property
    def continuous(self) -> bool:
        """True if the action takes a CC's value; False for a trigger (CC or note)."""
        return self in _CONTINUOUS


_CONTINUOUS = frozenset({Action.TEMPERATURE, Action.REPLY_LENGTH, Action.FOLLOW})
_ACTION_LIST = ", ".join(a.value for a in Action)


def action_named(value: object) -> Action:
    try:
        return Action(value)  # type: ignore[arg-type]  # anything: a ValueError is the answer
    except ValueError:
        raise ConfigError(f"unknown action {show_value(value)}; valid actions: {_ACTION_LIST}") from None


SourceKind: TypeAlias = Literal["cc", "note"]


@dataclass(frozen=True, slots=True)
class Source:
    """Where a control comes from: a CC or a note number 0-127, on one channel
    (0-15) or on any channel (None)."""

    kind: SourceKind
    number: int
    channel: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("cc", "note"):
            raise ConfigError(f"a control source is 'cc' or 'note', got {show_value(self.kind)}")
        name = "CC number" if self.kind == "cc" else "note number"
        object.__setattr__(self, "number", check_int(self.number, name, 0, _DATA_MAX))
        if self.channel is not None:
            object.__setattr__(self, "channel", check_int(self.channel, "channel", 0, CHANNELS - 1))

    @classmethod
    def cc(cls, number: int, channel: int | None = None) -> Source:
        return cls("cc", number, channel)

    @classmethod
    def note(cls, number: int, channel: int | None = None) -> Source:
        return cls("note", number, channel)

    def overlaps(self, other: Source) -> bool:
        """Whether some message would come from both sources."""
        return (
            self.kind == other.kind
            and self.number == other.number
            and (self.channel is None or other.channel is None or self.channel == other.channel)
        )

    def __str__(self) -> str:
        where = "any channel" if self.channel is None else f"channel {self.channel + 1}"
        return f"{'CC' if self.kind == 'cc' else 'note'} {self.number} ({where})"


SourceLike: TypeAlias = Source | tuple[str, int] | tuple[str, int, int | None]


def _source(value: SourceLike) -> Source:
    if isinstance(value, Source):
        return value
    if isinstance(value, tuple) and len(value) in (2, 3):
        return Source(*value)
    raise ConfigError(f"a control source is ('cc' or 'note', number[, channel]), got {show_value(value)}")


def check_controls(mappings: Mapping[Any, SourceLike]) -> Mapping[Action, Source]:
    """Mappings with Action keys and Source values, read-only; ConfigError if unusable."""
    checked: dict[Action, Source] = {}
    for key, value in mappings.items():
        action = action_named(key)
        source = _source(value)
        if action.continuous and source.kind != "cc":
            raise ConfigError(f"{action} takes a value, so it needs a CC, not a note")
        for other_action, other in checked.items():
            if source.overlaps(other):
                raise ConfigError(f"{other_action} and {action} both use {source}; give each its own control")
        checked[action] = source
    return MappingProxyType(dict(sorted(checked.items(), key=lambda item: _ACTION_ORDER[item[0]])))


_ACTION_ORDER = {action: i for i, action in enumerate(Action)}


def remap(mappings: Mapping[Action, Source], action: Action | str, source: SourceLike | None) -> dict[Action, Source]:
    """`mappings` with `action` on `source` (None: unmapped); other actions on that source lose it."""
    action = action_named(action)
    new = {a: s for a, s in mappings.items() if a != action}
    if source is not None:
        source = _source(source)
        new = {a: s for a, s in new.items() if not s.overlaps(source)}
        new[action] = source
    return new


DEFAULT_CONTROLS: Final[Mapping[Action, Source]] = check_controls({Action.TEMPERATURE: Source.cc(1)})
"""Without a ``[controls]`` table: the modulation wheel (CC 1, any channel) sets the temperature."""


# -- values -----------------------------------------------------------------------


def check_cc_number(value: object, name: str = "CC number") -> int:
    """`value` (an int, or digits as from a command line) as a CC number 0-127.

    `name` is what the message calls it, e.g. ``check_cc_number(args.temp_cc,
    "--temp-cc")`` raises ``ConfigError("--temp-cc must be 0-127, got 200")``.
    Call it after argparse, not as its `type=`: argparse would hide the message.
    """
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,9}\s*", value):
        value = int(value)
    return check_int(value, name, 0, _DATA_MAX)


def check_temperature_bounds(lo: object, mid: object, hi: object) -> tuple[float, float, float]:
    bounds = (check_temperature(lo, "temperature_lo"), check_temperature(mid, "temperature_mid"),
              check_temperature(hi, "temperature_hi"))
    if not bounds[0] < bounds[1] < bounds[2]:
        raise ConfigError(
            f"temperature_lo < temperature_mid < temperature_hi must hold, got {bounds[0]}, {bounds[1]}, {bounds[2]}"
        )
    return bounds


_REPLY_NOTES_MAX = 1024


def check_reply_bounds(lo: object, hi: object) -> tuple[int, int]:
    bounds = (check_int(lo, "reply_notes_lo", 1, _REPLY_NOTES_MAX), check_int(hi, "reply_notes_hi", 1, _REPLY_NOTES_MAX))
    if bounds[0] > bounds[1]:
        raise ConfigError(f"reply_notes_lo must be <= reply_notes_hi, got {bounds[0]} and {bounds[1]}")
    return bounds


def reply_notes_from_cc(value: int, lo: int = 4, hi: int = 64) -> int:
    """CC 0..127 -> notes per reply, log scale: 0 -> lo, 127 -> hi (4, 16, 64 at 0, 64, 127)."""
    lo, hi = check_reply_bounds(lo, hi)
    v = check_int(value, "CC value", 0, _DATA_MAX)
    return min(hi, max(lo, round(lo * math.pow(hi / lo, v / _DATA_MAX))))


def follow_from_cc(value: int) -> float:
    """CC 0..127 -> follow amount 0.0..1.0, linear."""
    return check_int(value, "CC value", 0, _DATA_MAX) / _DATA_MAX


# -- MIDI learn -------------------------------------------------------------------


class Learned(NamedTuple):
    """A mapping found by `Learner`: apply with `with_mapping(*learned)`."""

    action: Action
    source: Source

    def __str__(self) -> str:
        return f"{self.action} on {self.source}"


class Learner:
    """Armed for one action: the next control the player moves becomes its source.

    Feed it every raw message while it is armed. Any CC message counts (one
    move of a knob sends one), except channel mode messages (CC 120-127,
    which devices send on their own, e.g. all notes off at transport stop). For
    a trigger action a note-on counts too; for a continuous one notes are
    ignored. Clock, sysex and anything else are ignored. The learned source
    is on any channel unless `keep_channel`. One use: after it has learned,
    `feed` returns None.
    """

    __slots__ = ("action", "keep_channel", "learned")

    def __init__(self, action: Action | str, *, keep_channel: bool = False) -> None:
        self.action = action_named(action)
        self.keep_channel = keep_channel
        self.learned: Learned | None = None

    def feed(self, data: Sequence[int]) -> Learned | None:
        """The mapping if `data` (one raw MIDI message) teaches one, else None; never raises."""
        if self.learned is not None or len(data) != 3:
            return None
        status, number, value = data
        if not (0x80 <= status < 0xF0 and 0 <= number <= _DATA_MAX and 0 <= value <= _DATA_MAX):
            return None
        kind = status & 0xF0
        if kind == _CONTROL_CHANGE and number < _FIRST_MODE_CC:
            source_kind: SourceKind = "cc"
        elif kind == _NOTE_ON and value and not self.action.continuous:
            source_kind = "note"
        else:
            return None
        channel = status & 0x0F if self.keep_channel else None
        self.learned = Learned(self.action, Source(source_kind, number, channel))
        return self.learned
