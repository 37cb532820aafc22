"""Reading raw MIDI with the control mappings: which messages are controls, and what they ask for.

`ControlMap.match` runs in the input path before the note tracker, so everything it returns is computed
when the map is built: a match is a few integer operations and a list look-up. The vocabulary (actions,
sources, knob curves) is in `improv.controls.actions`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from improv.controls.actions import (
    _DATA_MAX,
    _TRIGGER_ON,
    CHANNELS,
    DEFAULT_CONTROLS,
    Action,
    Source,
    SourceLike,
    action_named,
    check_controls,
    check_reply_bounds,
    check_temperature_bounds,
    follow_from_cc,
    remap,
    reply_notes_from_cc,
)
from improv.midi.status import CONTROL_CHANGE as _CONTROL_CHANGE
from improv.midi.status import NOTE_OFF as _NOTE_OFF
from improv.midi.status import NOTE_ON as _NOTE_ON
from improv.midi.status import POLY_AFTERTOUCH as _POLY_AFTERTOUCH
from improv.model.sampling import temperature_from_cc

__all__ = ["CONSUMED", "ControlEvent", "ControlMap"]


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
        self._mappings = DEFAULT_CONTROLS if mappings is None else check_controls(mappings)
        self._temperature_bounds = check_temperature_bounds(*temperature_bounds)
        self._reply_notes_bounds = check_reply_bounds(*reply_notes_bounds)
        # One slot per (channel, number): index channel << 7 | number.
        self._cc_values: list[tuple[ControlEvent, ...] | None] = [None] * (CHANNELS << 7)
        self._cc_triggers: list[_Trigger | None] = [None] * (CHANNELS << 7)
        self._note_triggers: list[_Trigger | None] = [None] * (CHANNELS << 7)
        self._cc_high = bytearray(CHANNELS << 7)
        for action, source in self._mappings.items():
            channels = range(CHANNELS) if source.channel is None else (source.channel,)
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
        return self._mappings.get(action_named(action))

    def with_mapping(self, action: Action | str, source: SourceLike | None) -> ControlMap:
        """A new map with `action` on `source` (None: unmapped). An action that
        used that source loses it, as when MIDI learn reassigns a knob."""
        return ControlMap(
            remap(self._mappings, action, source),
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
