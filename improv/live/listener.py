"""Live note tracking: raw MIDI input in, note onsets and finished notes out.

The engine must answer as soon as a key goes down, but it learns a note's
length only when the note stops sounding. So the tracker reports twice:
a `NoteStarted` when a key is struck, and the finished `Note` (start plus
sounding time, sustain pedal included) when it falls silent.

The tracker runs in the MIDI input callback, so it is pure and cheap: no I/O,
no locks, no mido objects on the raw-byte path, and a shared empty tuple when
a message changes nothing. It never raises on input: bytes it cannot read as a
note, pedal or all-notes-off message are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence, TypeAlias

from improv.midi.status import (
    ALL_NOTES_OFF,
    ALL_SOUND_OFF,
    CHANNELS,
    CHANNEL_PRESSURE,
    CONTROL_CHANGE,
    NOTE_OFF,
    NOTE_ON,
    PROGRAM_CHANGE,
    SUSTAIN_PEDAL,
)
from improv.music.events import Note, quantize_time, sort_notes

if TYPE_CHECKING:
    import mido

_PITCHES = 128

SUSTAIN_CC = SUSTAIN_PEDAL
ALL_SOUND_OFF_CC = ALL_SOUND_OFF
RESET_ALL_CONTROLLERS_CC = 121
ALL_NOTES_OFF_CC = ALL_NOTES_OFF
PEDAL_DOWN_MIN = 64
"""CC64 values from this up hold the pedal down; below it the pedal is up."""

# Per-key state, one byte for each (channel, pitch).
_SILENT = 0
_HELD = 1  # key down, sounding
_SUSTAINED = 2  # key up, sounding because the pedal is down


@dataclass(frozen=True, slots=True)
class NoteStarted:
    """A key went down: pitch 0-127, velocity 1-127, time in seconds, channel 0-15.

    The matching `Note` follows when the note stops sounding; it has the same
    pitch, velocity, channel, and `start == time`.
    """

    pitch: int
    velocity: int
    time: float
    channel: int = 0


TrackerOutput: TypeAlias = NoteStarted | Note

_NOTHING: tuple[TrackerOutput, ...] = ()


def _start_time(time: float) -> float:
    """A `Note`-valid start: on the microsecond grid, never negative (nor NaN)."""
    return quantize_time(time) if time > 0.0 else 0.0


class NoteTracker:
    """Pairs note-ons with what ends them, per (channel, pitch).

    A note ends at its note-off (or velocity-0 note-on), at pedal-up if it was
    released while its channel's sustain pedal was down, when its pitch is
    struck again, or at all-notes-off / all-sound-off (CC123 / CC120, and the
    omni/mono/poly mode messages CC124-127, which imply all notes off).
    Reset-all-controllers (CC121) lifts the pedal. Note-offs for keys that are
    not down are ignored.
    """

    __slots__ = (
        "_state",
        "_start",
        "_velocity",
        "_sounding_by_channel",
        "_pedal",
        "_keys_down",
        "_sounding",
        "_last_activity_time",
    )

    def __init__(self) -> None:
        self._state = bytearray(CHANNELS * _PITCHES)
        self._start = [0.0] * (CHANNELS * _PITCHES)
        self._velocity = [0] * (CHANNELS * _PITCHES)
        # Pitches sounding (held or sustained) on each channel, so pedal-up and
        # all-notes-off touch only those instead of scanning 128 keys.
        self._sounding_by_channel: list[set[int]] = [set() for _ in range(CHANNELS)]
        self._pedal = [False] * CHANNELS
        self._keys_down = 0
        self._sounding = 0
        self._last_activity_time: float | None = None

    # -- queries ----------------------------------------------------------

    @property
    def keys_down(self) -> int:
        """How many keys are physically held, over all channels."""
        return self._keys_down

    @property
    def sounding(self) -> int:
        """How many notes sound: keys held plus notes the pedal sustains."""
        return self._sounding

    @property
    def last_activity_time(self) -> float | None:
        """Time of the last note-on, key release, pedal change or all-notes-off
        that ended a note; None before any. `flush` does not count."""
        return self._last_activity_time

    def pedal_down(self, channel: int = 0) -> bool:
        """Whether the sustain pedal (CC64) is down on `channel` (0-15)."""
        if not 0 <= channel < CHANNELS:
            raise ValueError(f"channel must be 0-15, got {channel}")
        return self._pedal[channel]

    # -- input ------------------------------------------------------------

    def feed(self, msg: mido.Message, time: float) -> tuple[TrackerOutput, ...]:
        """Track one mido message received at `time` (seconds); see `feed_bytes`."""
        return self.feed_bytes(msg.bytes(), time)

    def feed_bytes(self, data: Sequence[int], time: float) -> tuple[TrackerOutput, ...]:
        """Track raw MIDI bytes (as python-rtmidi delivers them) received at `time`.

        Returns what happened, in order: finished `Note`s and `NoteStarted`s
        (a retriggered pitch gives its `Note` before the new `NoteStarted`).
        `data` may hold several messages, with running status; realtime bytes
        may appear anywhere. Anything else that is not a complete channel
        message (sysex, system common, stray data bytes, ints outside 0-255,
        truncated messages) is skipped.
        """
        out = _NOTHING
        running = 0  # status of the channel message being read, 0 for none
        n = len(data)
        i = 0
        while i < n:
            byte = data[i]
            i += 1
            if 0 <= byte < 0x80:
                if not running:
                    continue  # stray data byte (or the body of a sysex)
                first = byte
            elif 0x80 <= byte < 0xF0:
                running = byte
                if i == n:
                    break
                first = data[i]
                while 0xF8 <= first <= 0xFF:  # realtime bytes may interleave
                    i += 1
                    if i == n:
                        return out
                    first = data[i]
                if not 0 <= first < 0x80:
                    continue  # truncated; read `first` as a status byte next
                i += 1
            elif 0xF8 <= byte <= 0xFF:
                continue  # realtime (clock, start, stop, ...): keeps running status
            else:
                running = 0  # sysex, system common, or not a byte at all
                continue

            kind = running & 0xF0
            if kind == PROGRAM_CHANGE or kind == CHANNEL_PRESSURE:
                continue  # one data byte, already read
            if i == n:
                break
            second = data[i]
            while 0xF8 <= second <= 0xFF:
                i += 1
                if i == n:
                    return out
                second = data[i]
            if not 0 <= second < 0x80:
                continue
            i += 1

            channel = running & 0x0F
            if kind == NOTE_ON:
                if second:
                    result = self._note_on(channel, first, second, time)
                else:
                    result = self._note_off(channel, first, time)
            elif kind == NOTE_OFF:
                result = self._note_off(channel, first, time)
            elif kind == CONTROL_CHANGE:
                result = self._control_change(channel, first, second, time)
            else:
                continue  # polyphonic aftertouch, pitch bend
            if result:
                out = result if not out else (*out, *result)
        return out

    def flush(self, time: float) -> tuple[Note, ...]:
        """End every sounding note at `time`, in onset order, as if all keys were
        released and every pedal lifted (the pedal state itself is kept)."""
        if not self._sounding:
            return ()
        ended: list[Note] = []
        for channel, pitches in enumerate(self._sounding_by_channel):
            for pitch in list(pitches):
                if self._state[channel * _PITCHES + pitch] == _HELD:
                    self._keys_down -= 1
                ended.append(self._end(channel, pitch, time))
        return tuple(sort_notes(ended))

    def expire(self, time: float, max_age_s: float) -> tuple[Note, ...]:
        """End notes that started more than `max_age_s` before `time`.

        A key "held" that long is almost always a lost note-off (a cable
        pulled, garbage on the line); ending it lets the engine hear the end
        of the phrase again. The pedal state is kept.
        """
        if not self._sounding:
            return ()
        ended: list[Note] = []
        horizon = time - max_age_s
        for channel, pitches in enumerate(self._sounding_by_channel):
            for pitch in list(pitches):
                key = channel * _PITCHES + pitch
                if self._start[key] < horizon:
                    if self._state[key] == _HELD:
                        self._keys_down -= 1
                    ended.append(self._end(channel, pitch, time))
        return tuple(sort_notes(ended))

    def reset(self) -> None:
        """Forget everything: notes, pedals, activity. Emits nothing."""
        self._state[:] = bytes(len(self._state))
        for pitches in self._sounding_by_channel:
            pitches.clear()
        self._pedal[:] = [False] * CHANNELS
        self._keys_down = 0
        self._sounding = 0
        self._last_activity_time = None

    # -- state changes ----------------------------------------------------

    def _end(self, channel: int, pitch: int, time: float) -> Note:
        """Silence a sounding note and return it. The caller fixes `_keys_down`."""
        key = channel * _PITCHES + pitch
        self._state[key] = _SILENT
        self._sounding_by_channel[channel].discard(pitch)
        self._sounding -= 1
        start = self._start[key]
        duration = time - start
        duration = quantize_time(duration) if duration > 0.0 else 0.0
        return Note(pitch, self._velocity[key], start, duration, channel)

    def _note_on(self, channel: int, pitch: int, velocity: int, time: float) -> tuple[TrackerOutput, ...]:
        key = channel * _PITCHES + pitch
        state = self._state[key]
        start = _start_time(time)
        started = NoteStarted(pitch, velocity, start, channel)
        self._last_activity_time = time
        if state == _SILENT:
            result: tuple[TrackerOutput, ...] = (started,)
        else:
            # Struck again while sounding: the old note ends where the new begins.
            result = (self._end(channel, pitch, time), started)
        if state != _HELD:
            self._keys_down += 1
        self._state[key] = _HELD
        self._start[key] = start
        self._velocity[key] = velocity
        self._sounding_by_channel[channel].add(pitch)
        self._sounding += 1
        return result

    def _note_off(self, channel: int, pitch: int, time: float) -> tuple[TrackerOutput, ...]:
        key = channel * _PITCHES + pitch
        if self._state[key] != _HELD:
            return _NOTHING  # orphan, or a repeated note-off under the pedal
        self._keys_down -= 1
        self._last_activity_time = time
        if self._pedal[channel]:
            self._state[key] = _SUSTAINED
            return _NOTHING
        return (self._end(channel, pitch, time),)

    def _control_change(self, channel: int, control: int, value: int, time: float) -> tuple[TrackerOutput, ...]:
        if control == SUSTAIN_CC:
            return self._set_pedal(channel, value >= PEDAL_DOWN_MIN, time)
        if control == ALL_NOTES_OFF_CC or control == ALL_SOUND_OFF_CC or control >= 124:
            return self._end_channel(channel, time)
        if control == RESET_ALL_CONTROLLERS_CC:
            return self._set_pedal(channel, False, time)
        return _NOTHING

    def _set_pedal(self, channel: int, down: bool, time: float) -> tuple[TrackerOutput, ...]:
        if self._pedal[channel] == down:
            return _NOTHING  # a continuous pedal sends many values per press
        self._pedal[channel] = down
        self._last_activity_time = time
        if down:
            return _NOTHING
        base = channel * _PITCHES
        state = self._state
        released = [p for p in self._sounding_by_channel[channel] if state[base + p] == _SUSTAINED]
        if not released:
            return _NOTHING
        return tuple(sort_notes([self._end(channel, pitch, time) for pitch in released]))

    def _end_channel(self, channel: int, time: float) -> tuple[TrackerOutput, ...]:
        pitches = self._sounding_by_channel[channel]
        if not pitches:
            return _NOTHING
        self._last_activity_time = time
        base = channel * _PITCHES
        ended: list[Note] = []
        for pitch in list(pitches):
            if self._state[base + pitch] == _HELD:
                self._keys_down -= 1
            ended.append(self._end(channel, pitch, time))
        return tuple(sort_notes(ended))
