"""MIDI status bytes and the small checks on them: the one place they are spelled out.

A channel message's status is its kind in the high nibble and the channel (0-15) in the low one.
"""

from __future__ import annotations

from typing import Final

NOTE_OFF: Final = 0x80
NOTE_ON: Final = 0x90
POLY_AFTERTOUCH: Final = 0xA0
CONTROL_CHANGE: Final = 0xB0
PROGRAM_CHANGE: Final = 0xC0
CHANNEL_PRESSURE: Final = 0xD0
PITCH_BEND: Final = 0xE0

SYSEX: Final = 0xF0
SONG_POSITION: Final = 0xF2
END_OF_SYSEX: Final = 0xF7
CLOCK: Final = 0xF8
START: Final = 0xFA
CONTINUE: Final = 0xFB
STOP: Final = 0xFC
ACTIVE_SENSING: Final = 0xFE

ALL_SOUND_OFF: Final = 120  # controller numbers of the channel mode messages
ALL_NOTES_OFF: Final = 123
SUSTAIN_PEDAL: Final = 64

CHANNELS: Final = 16


def kind(status: int) -> int:
    """The message kind of a status byte: its high nibble for channel messages, itself for system ones."""
    return status if status >= SYSEX else status & 0xF0


def channel(status: int) -> int:
    return status & 0x0F


def is_note_on(data: tuple[int, ...] | list[int]) -> bool:
    """A note-on with velocity > 0 (velocity 0 is a note-off by the MIDI standard)."""
    return len(data) >= 3 and data[0] & 0xF0 == NOTE_ON and data[2] > 0


def is_note_off(data: tuple[int, ...] | list[int]) -> bool:
    return len(data) >= 3 and (data[0] & 0xF0 == NOTE_OFF or (data[0] & 0xF0 == NOTE_ON and data[2] == 0))
