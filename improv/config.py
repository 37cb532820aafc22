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

The config file (``~/.config/improv/config.toml`` on Linux). Every key is
optional; a missing file means all defaults. If ``[controls]`` is present it
is the complete set of mappings (an empty table maps nothing); if it is
absent, the temperature knob is on CC 1 (the modulation wheel), any channel::

    [engine]
    mode = "call"         # "call": answer when you pause; "duet": play along
    gap_ms = 500          # the pause, in milliseconds, before improv answers
    temperature = 1.0     # at start-up, until the knob moves
    temperature_lo = 0.1  # temperature knob at 0
    temperature_mid = 1.0 # ... at 64
    temperature_hi = 3.0  # ... at 127
    reply_notes = 16      # notes per reply at start-up
    reply_notes_lo = 4    # reply_length knob at 0
    reply_notes_hi = 64   # ... at 127
    seed_events = 64      # the rolling seed: how many recent events the model state is rebuilt from
    register_margin = 12  # answers stay within this many semitones of your notes (0: anywhere in the range)
    chord_margin = 1      # answers' chords: at most this many notes more than your largest recent chord
    soundfont = ""        # --synth without a file uses this SoundFont ("": look in the usual places)

    [controls]            # action = { cc = 0-127 } or { note = 0-127 }, and
                          # channel = 1-16 as on your gear; no channel: any
    temperature = { cc = 1 }
    reply_length = { cc = 74 }
    panic = { note = 108, channel = 10 }
    mode = { cc = 80 }

Channels are 1-16 in the file and 0-15 in Python (`Source.channel`), like
the rest of improv. A file that cannot be used (invalid TOML, unknown key or
action, wrong type, number out of range, one source for two actions) raises a
one-line `ConfigError` naming the file, and `save_config` refuses to replace
it, so a typo never costs the user their settings. Saving rewrites the file
from the `Config`: comments are not kept.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import stat
import tempfile
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple, TypeAlias

from improv.errors import ConfigError
from improv.model.sampling import temperature_from_cc
from improv.model.temperature import check_temperature

__all__ = [
    "CONSUMED",
    "DEFAULT_CONTROLS",
    "Action",
    "Config",
    "ControlEvent",
    "ControlMap",
    "Learned",
    "Learner",
    "Source",
    "check_cc_number",
    "default_config_path",
    "follow_from_cc",
    "format_config",
    "load_config",
    "parse_config",
    "reply_notes_from_cc",
    "save_config",
]

CONFIG_FILE_NAME = "config.toml"

_CHANNELS = 16
_DATA_MAX = 127
_TRIGGER_ON = 64  # a CC trigger is "pressed" from this value up
_FIRST_MODE_CC = 120  # 120-127 are channel mode messages (all notes off, ...)

_NOTE_OFF = 0x80
_NOTE_ON = 0x90
_POLY_AFTERTOUCH = 0xA0
_CONTROL_CHANGE = 0xB0

_MODES = ("call", "duet")  # as improv.live.engine.MODES, which imports torch


# -- checks -----------------------------------------------------------------------


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _int(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an integer {lo}-{hi}, got {_show(value)}")
    number = int(value)
    if not lo <= number <= hi:
        raise ConfigError(f"{name} must be {lo}-{hi}, got {number}")
    return number


def _float(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number, got {_show(value)}")
    number = float(value)
    if not 0.0 < number < math.inf:
        raise ConfigError(f"{name} must be a finite number > 0, got {_show(value)}")
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


def _action(value: object) -> Action:
    try:
        return Action(value)  # type: ignore[arg-type]  # anything: a ValueError is the answer
    except ValueError:
        raise ConfigError(f"unknown action {_show(value)}; valid actions: {_ACTION_LIST}") from None


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
            raise ConfigError(f"a control source is 'cc' or 'note', got {_show(self.kind)}")
        name = "CC number" if self.kind == "cc" else "note number"
        object.__setattr__(self, "number", _int(self.number, name, 0, _DATA_MAX))
        if self.channel is not None:
            object.__setattr__(self, "channel", _int(self.channel, "channel", 0, _CHANNELS - 1))

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
    raise ConfigError(f"a control source is ('cc' or 'note', number[, channel]), got {_show(value)}")


def _check_controls(mappings: Mapping[Any, SourceLike]) -> Mapping[Action, Source]:
    """Mappings with Action keys and Source values, read-only; ConfigError if unusable."""
    checked: dict[Action, Source] = {}
    for key, value in mappings.items():
        action = _action(key)
        source = _source(value)
        if action.continuous and source.kind != "cc":
            raise ConfigError(f"{action} takes a value, so it needs a CC, not a note")
        for other_action, other in checked.items():
            if source.overlaps(other):
                raise ConfigError(f"{other_action} and {action} both use {source}; give each its own control")
        checked[action] = source
    return MappingProxyType(dict(sorted(checked.items(), key=lambda item: _ACTION_ORDER[item[0]])))


_ACTION_ORDER = {action: i for i, action in enumerate(Action)}


def _remap(mappings: Mapping[Action, Source], action: Action | str, source: SourceLike | None) -> dict[Action, Source]:
    """`mappings` with `action` on `source` (None: unmapped); other actions on that source lose it."""
    action = _action(action)
    new = {a: s for a, s in mappings.items() if a != action}
    if source is not None:
        source = _source(source)
        new = {a: s for a, s in new.items() if not s.overlaps(source)}
        new[action] = source
    return new


DEFAULT_CONTROLS: Final[Mapping[Action, Source]] = _check_controls({Action.TEMPERATURE: Source.cc(1)})
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
    return _int(value, name, 0, _DATA_MAX)


def _check_temperature_bounds(lo: object, mid: object, hi: object) -> tuple[float, float, float]:
    bounds = (check_temperature(lo, "temperature_lo"), check_temperature(mid, "temperature_mid"),
              check_temperature(hi, "temperature_hi"))
    if not bounds[0] < bounds[1] < bounds[2]:
        raise ConfigError(
            f"temperature_lo < temperature_mid < temperature_hi must hold, got {bounds[0]}, {bounds[1]}, {bounds[2]}"
        )
    return bounds


_REPLY_NOTES_MAX = 1024


def _check_reply_bounds(lo: object, hi: object) -> tuple[int, int]:
    bounds = (_int(lo, "reply_notes_lo", 1, _REPLY_NOTES_MAX), _int(hi, "reply_notes_hi", 1, _REPLY_NOTES_MAX))
    if bounds[0] > bounds[1]:
        raise ConfigError(f"reply_notes_lo must be <= reply_notes_hi, got {bounds[0]} and {bounds[1]}")
    return bounds


def reply_notes_from_cc(value: int, lo: int = 4, hi: int = 64) -> int:
    """CC 0..127 -> notes per reply, log scale: 0 -> lo, 127 -> hi (4, 16, 64 at 0, 64, 127)."""
    lo, hi = _check_reply_bounds(lo, hi)
    v = _int(value, "CC value", 0, _DATA_MAX)
    return min(hi, max(lo, round(lo * math.pow(hi / lo, v / _DATA_MAX))))


def follow_from_cc(value: int) -> float:
    """CC 0..127 -> follow amount 0.0..1.0, linear."""
    return _int(value, "CC value", 0, _DATA_MAX) / _DATA_MAX


# -- matching ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ControlEvent:
    """What a control message asks for: `action` with its `value` (see `Action`).

    `action` is None only for `CONSUMED`: the message belongs to a control but
    asks for nothing (a key's note-off, a button's release); drop it.
    """

    action: Action | None
    value: float | None = None


CONSUMED: Final = ControlEvent(None)

_Trigger: TypeAlias = tuple[ControlEvent, ControlEvent]  # (fired, consumed)


class ControlMap:
    """Which CCs and notes are controls, and `match` to read raw MIDI with them.

    Immutable but for the trigger buttons' up/down state, which `match`
    keeps; call `match` from one thread (the input path). To change a
    mapping, build a new map with `with_mapping` and swap it in.
    """

    __slots__ = (
        "_mappings",
        "_temperature_bounds",
        "_reply_notes_bounds",
        "_cc_values",
        "_cc_triggers",
        "_note_triggers",
        "_cc_high",
    )

    def __init__(
        self,
        mappings: Mapping[Action, SourceLike] | Mapping[str, SourceLike] | None = None,
        *,
        temperature_bounds: tuple[float, float, float] = (0.1, 1.0, 3.0),
        reply_notes_bounds: tuple[int, int] = (4, 64),
    ) -> None:
        """`mappings` None means `DEFAULT_CONTROLS`; `{}` maps nothing."""
        self._mappings = DEFAULT_CONTROLS if mappings is None else _check_controls(mappings)
        self._temperature_bounds = _check_temperature_bounds(*temperature_bounds)
        self._reply_notes_bounds = _check_reply_bounds(*reply_notes_bounds)
        # One slot per (channel, number): index channel << 7 | number.
        self._cc_values: list[tuple[ControlEvent, ...] | None] = [None] * (_CHANNELS << 7)
        self._cc_triggers: list[_Trigger | None] = [None] * (_CHANNELS << 7)
        self._note_triggers: list[_Trigger | None] = [None] * (_CHANNELS << 7)
        self._cc_high = bytearray(_CHANNELS << 7)
        for action, source in self._mappings.items():
            channels = range(_CHANNELS) if source.channel is None else (source.channel,)
            slots = [channel << 7 | source.number for channel in channels]
            if action.continuous:
                values = tuple(ControlEvent(action, v) for v in self._values(action))
                for slot in slots:
                    self._cc_values[slot] = values
            else:
                table = self._cc_triggers if source.kind == "cc" else self._note_triggers
                trigger = (ControlEvent(action), CONSUMED)
                for slot in slots:
                    table[slot] = trigger

    def _values(self, action: Action) -> Iterable[float]:
        """The value of a continuous action for each CC value 0..127."""
        if action is Action.TEMPERATURE:
            lo, mid, hi = self._temperature_bounds
            return (temperature_from_cc(v, lo, mid, hi) for v in range(_DATA_MAX + 1))
        if action is Action.REPLY_LENGTH:
            return (reply_notes_from_cc(v, *self._reply_notes_bounds) for v in range(_DATA_MAX + 1))
        return (follow_from_cc(v) for v in range(_DATA_MAX + 1))

    @property
    def mappings(self) -> Mapping[Action, Source]:
        return self._mappings

    @property
    def temperature_bounds(self) -> tuple[float, float, float]:
        return self._temperature_bounds

    @property
    def reply_notes_bounds(self) -> tuple[int, int]:
        return self._reply_notes_bounds

    def source(self, action: Action | str) -> Source | None:
        """Where `action` is mapped, or None."""
        return self._mappings.get(_action(action))

    def with_mapping(self, action: Action | str, source: SourceLike | None) -> ControlMap:
        """A new map with `action` on `source` (None: unmapped). An action that
        used that source loses it, as when MIDI learn reassigns a knob."""
        return ControlMap(
            _remap(self._mappings, action, source),
            temperature_bounds=self._temperature_bounds,
            reply_notes_bounds=self._reply_notes_bounds,
        )

    def reset(self) -> None:
        """Forget which CC buttons are held (their next press fires)."""
        self._cc_high[:] = bytes(len(self._cc_high))

    def match(self, data: Sequence[int]) -> ControlEvent | None:
        """One raw MIDI message -> the control it is, or None if it is not one.

        None means: not a control, pass it on to the note tracker. That
        includes anything that is not a single complete 3-byte channel message
        (clock, sysex, program change, garbage, ints outside 0-255); this
        never raises for a sequence of ints. `CONSUMED` means: a control's
        release, drop it. Otherwise the event to apply.
        """
        if len(data) != 3:
            return None
        status, number, value = data
        if not (0x80 <= status < 0xF0 and 0 <= number <= _DATA_MAX and 0 <= value <= _DATA_MAX):
            return None
        slot = (status & 0x0F) << 7 | number
        kind = status & 0xF0
        if kind == _CONTROL_CHANGE:
            values = self._cc_values[slot]
            if values is not None:
                return values[value]
            trigger = self._cc_triggers[slot]
            if trigger is None:
                return None
            high = value >= _TRIGGER_ON
            was_high = self._cc_high[slot]
            self._cc_high[slot] = high
            return trigger[0] if high and not was_high else trigger[1]
        if kind == _NOTE_ON or kind == _NOTE_OFF or kind == _POLY_AFTERTOUCH:
            trigger = self._note_triggers[slot]
            if trigger is None:
                return None
            return trigger[0] if kind == _NOTE_ON and value else trigger[1]
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ControlMap):
            return NotImplemented
        return (self._mappings, self._temperature_bounds, self._reply_notes_bounds) == (
            other._mappings,
            other._temperature_bounds,
            other._reply_notes_bounds,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        mapped = ", ".join(f"{action}: {source}" for action, source in self._mappings.items())
        return f"ControlMap({{{mapped}}})"


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
        self.action = _action(action)
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


# -- config -----------------------------------------------------------------------


MAX_SEED_EVENTS = 1024  # 16 times the model's training windows; rebuilding it after a model change takes ~0.6 s


@dataclass(frozen=True)
class Config:
    """Everything improv keeps between sessions; validated on construction.

    Engine values as in the ``[engine]`` table of the module docstring;
    `controls` as in ``[controls]`` (channels 0-15 here, 1-16 in the file).
    """

    mode: str = "call"
    gap_ms: int = 500
    temperature: float = 1.0
    temperature_lo: float = 0.1
    temperature_mid: float = 1.0
    temperature_hi: float = 3.0
    reply_notes: int = 16
    reply_notes_lo: int = 4
    reply_notes_hi: int = 64
    seed_events: int = 64
    register_margin: int = 12
    chord_margin: int = 1
    soundfont: str = ""
    controls: Mapping[Action, Source] = field(default_factory=lambda: DEFAULT_CONTROLS)

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ConfigError(f"mode must be one of {', '.join(map(repr, _MODES))}, got {_show(self.mode)}")
        set_ = object.__setattr__
        set_(self, "gap_ms", _int(self.gap_ms, "gap_ms", 1, 60_000))
        lo, mid, hi = _check_temperature_bounds(self.temperature_lo, self.temperature_mid, self.temperature_hi)
        set_(self, "temperature_lo", lo)
        set_(self, "temperature_mid", mid)
        set_(self, "temperature_hi", hi)
        set_(self, "temperature", check_temperature(self.temperature))
        notes_lo, notes_hi = _check_reply_bounds(self.reply_notes_lo, self.reply_notes_hi)
        set_(self, "reply_notes_lo", notes_lo)
        set_(self, "reply_notes_hi", notes_hi)
        set_(self, "reply_notes", _int(self.reply_notes, "reply_notes", notes_lo, notes_hi))
        set_(self, "seed_events", _int(self.seed_events, "seed_events", 1, MAX_SEED_EVENTS))
        margin = _int(self.register_margin, "register_margin", 0, 127)
        if 0 < margin < 6:
            raise ConfigError(f"register_margin must be 0 (off) or 6-127, got {margin}")
        set_(self, "register_margin", margin)
        set_(self, "chord_margin", _int(self.chord_margin, "chord_margin", 0, 127))
        if not isinstance(self.soundfont, str):
            raise ConfigError(f"soundfont must be a file path in quotes, got {_show(self.soundfont)}")
        if not isinstance(self.controls, Mapping):
            raise ConfigError(f"controls must be a table of action = source, got {_show(self.controls)}")
        set_(self, "controls", _check_controls(self.controls))

    def control_map(self) -> ControlMap:
        """A `ControlMap` with these mappings and knob ranges."""
        return ControlMap(
            self.controls,
            temperature_bounds=(self.temperature_lo, self.temperature_mid, self.temperature_hi),
            reply_notes_bounds=(self.reply_notes_lo, self.reply_notes_hi),
        )

    def with_mapping(self, action: Action | str, source: SourceLike | None) -> Config:
        """A copy with `action` on `source` (None: unmapped), as `ControlMap.with_mapping`."""
        return replace(self, controls=_remap(self.controls, action, source))

    def copy(self, **overrides: Any) -> Config:
        """A copy with some fields changed (validated again)."""
        return replace(self, **overrides)


_ENGINE_KEYS = tuple(f.name for f in fields(Config) if f.name != "controls")


def default_config_path() -> Path:
    """``config.toml`` in the user config directory (platformdirs), e.g. ~/.config/improv/."""
    import platformdirs

    return Path(platformdirs.user_config_dir("improv")) / CONFIG_FILE_NAME


def _one_line(text: str) -> str:
    return " ".join(text.split("\n"))


def _source_from_toml(action: Action, value: object) -> Source:
    if not isinstance(value, dict):
        raise ConfigError(f"controls.{action} must be a table like {{ cc = 1 }}, got {_show(value)}")
    unknown = sorted(set(value) - {"cc", "note", "channel"})
    if unknown:
        raise ConfigError(f"controls.{action} has unknown key {unknown[0]!r}; use cc or note, and channel")
    kinds = [k for k in ("cc", "note") if k in value]
    if len(kinds) != 1:
        raise ConfigError(f"controls.{action} needs exactly one of cc or note, e.g. {{ cc = 1 }}")
    kind: SourceKind = "cc" if kinds[0] == "cc" else "note"
    number = _int(value[kind], f"controls.{action}.{kind}", 0, _DATA_MAX)
    channel = None
    if "channel" in value:
        channel = _int(value["channel"], f"controls.{action}.channel", 1, _CHANNELS) - 1
    return Source(kind, number, channel)


def _config_from_data(data: dict[str, Any]) -> Config:
    unknown = sorted(set(data) - {"engine", "controls"})
    if unknown:
        raise ConfigError(f"unknown key or table {unknown[0]!r}; the tables are [engine] and [controls]")
    engine = data.get("engine", {})
    if not isinstance(engine, dict):
        raise ConfigError(f"engine must be a table, got {_show(engine)}")
    unknown = sorted(set(engine) - set(_ENGINE_KEYS))
    if unknown:
        raise ConfigError(f"unknown key engine.{unknown[0]}; valid keys: {', '.join(_ENGINE_KEYS)}")
    if "controls" not in data:
        return Config(**engine)
    controls = data["controls"]
    if not isinstance(controls, dict):
        raise ConfigError(f"controls must be a table, got {_show(controls)}")
    sources = {}
    for key, value in controls.items():
        action = _action(key)
        sources[action] = _source_from_toml(action, value)
    return Config(**engine, controls=sources)


def parse_config(text: str | bytes, path: str | os.PathLike[str] = "<config>") -> Config:
    """A `Config` from TOML text; ConfigError (one line, naming `path`) if unusable."""
    try:
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ConfigError(f"not UTF-8 text (byte {error.start})") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"invalid TOML: {error}") from None
        return _config_from_data(data)
    except ConfigError as error:
        message = f"config file {path}: {error} (fix the file, or delete it to use the defaults)"
        raise ConfigError(_one_line(message)) from None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """The config at `path` (default: `default_config_path()`); defaults if there is no file."""
    path = default_config_path() if path is None else Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Config()
    except OSError as error:
        raise ConfigError(_one_line(f"cannot read config file {path}: {error.strerror or error}")) from None
    return parse_config(raw, path)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_TomlScalar: TypeAlias = str | int | float | bool


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_string(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char < " " or char == "\x7f":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_value(value: _TomlScalar | Mapping[str, _TomlScalar]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value} to a config file")
        return repr(value)  # shortest round-trip form; always has '.' or 'e'
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, Mapping):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return f"{{ {items} }}" if items else "{}"
    raise TypeError(f"cannot write {type(value).__name__} to a config file")


def _toml_document(tables: Mapping[str, Mapping[str, _TomlScalar | Mapping[str, _TomlScalar]]]) -> str:
    """TOML for tables of scalars and inline tables of scalars: all this module writes."""
    parts = []
    for name, table in tables.items():
        lines = [f"[{_toml_key(name)}]"]
        lines.extend(f"{_toml_key(key)} = {_toml_value(value)}" for key, value in table.items())
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def format_config(config: Config) -> str:
    """`config` as the TOML text `save_config` writes; `parse_config` reads it back equal."""
    engine = {name: getattr(config, name) for name in _ENGINE_KEYS}
    controls: dict[str, dict[str, int]] = {}
    for action, source in config.controls.items():
        entry: dict[str, int] = {source.kind: source.number}
        if source.channel is not None:
            entry["channel"] = source.channel + 1
        controls[action.value] = entry
    header = "# improv settings, rewritten by improv (comments are not kept); format: pydoc improv.config\n\n"
    return header + _toml_document({"engine": engine, "controls": controls})


def save_config(config: Config, path: str | os.PathLike[str] | None = None) -> Path:
    """Write `config` atomically (temp file + os.replace) and return the path written.

    Refuses, with ConfigError, to replace a file that exists but is not a
    valid config: the user may have typed something worth keeping. A symlink
    is followed, so the file it points to is the one replaced.
    """
    path = default_config_path() if path is None else Path(path)
    target = path.resolve() if path.is_symlink() else path
    text = format_config(config)
    if parse_config(text, "<written config>") != config:  # never write what cannot be read back
        raise ConfigError(f"config cannot be written faithfully to {path}: {config!r}")
    mode = None
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise ConfigError(_one_line(f"cannot write config file {path}: {error.strerror or error}")) from None
    if mode is not None:
        try:
            load_config(target)
        except ConfigError as error:
            raise ConfigError(f"cannot save settings: {error}") from None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            if mode is not None:
                os.chmod(temp, mode)
            os.replace(temp, target)
        except BaseException:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise
    except OSError as error:
        raise ConfigError(_one_line(f"cannot write config file {path}: {error.strerror or error}")) from None
    return target
