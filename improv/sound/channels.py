"""Channels, programs and channel messages as the synth sees them: small pure helpers."""

from __future__ import annotations

import operator
from collections.abc import Sequence

from improv.errors import SynthError
from improv.midi import status

PLAYER_PROGRAM = 0  # General MIDI programs numbered from 0: Acoustic Grand Piano
IMPROV_PROGRAM = 4  # Electric Piano 1
PLAYER_CHANNEL = 0
IMPROV_CHANNEL = 1
DRUM_CHANNEL = 9  # General MIDI percussion


def check_int(value: object, name: str, lo: int, hi: int) -> int:
    """`value` as an int in lo..hi, or a one-line SynthError naming `name` and the range."""
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise SynthError(f"{name} must be an integer {lo}-{hi}, got {value!r}") from None
    if not lo <= number <= hi:
        raise SynthError(f"{name} must be {lo}-{hi}, got {number}")
    return number


def parse_message(data: Sequence[int]) -> tuple[int, int, int, int] | None:
    """(kind, channel, data1, data2) of a channel message, or None if the bytes are not a valid one."""
    try:
        size = len(data)
        if not 2 <= size <= 3:
            return None
        first = operator.index(data[0])
        data1 = operator.index(data[1])
        data2 = operator.index(data[2]) if size == 3 else 0
    except (TypeError, IndexError):
        return None
    if not _is_channel_status(first) or not 0 <= data1 <= 127 or not 0 <= data2 <= 127:
        return None
    kind = status.kind(first)
    wanted = 2 if kind in (status.PROGRAM_CHANGE, status.CHANNEL_PRESSURE) else 3
    if size != wanted:
        return None
    return kind, status.channel(first), data1, data2


def rechannel(data: Sequence[int], channel: int) -> list[int]:
    """The same channel message on another channel (0-15), e.g. the player's keys onto the player's program."""
    message = list(data)
    if message and _is_channel_status(message[0]):
        message[0] = status.kind(message[0]) | status.channel(channel)
    return message


def _is_channel_status(byte: int) -> bool:
    return status.NOTE_OFF <= byte < status.SYSEX
