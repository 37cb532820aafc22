"""Our own output heard back through a loop (a synth's MIDI thru, a patched cable) is not the player."""

from __future__ import annotations

from collections.abc import Sequence

from improv.midi.status import NOTE_OFF, NOTE_ON

FORGET_AFTER = 256  # remembered notes before the old ones are thrown out
HORIZON_S = 1.0  # ... those sent longer ago than this


class EchoFilter:
    """Remembers the notes improv sent; `is_echo` says whether an input message is one of them coming back."""

    def __init__(self, channel: int, window_s: float) -> None:
        self.channel = channel
        self.window_s = window_s
        self.ignored = 0
        self._sent: dict[tuple[int, bool], tuple[float, int]] = {}  # (pitch, on?) -> (time, velocity)
        self._held: set[int] = set()  # echoed keys whose note-off has not come back yet

    def remember(self, pitch: int, is_on: bool, t: float, velocity: int) -> None:
        self._sent[(pitch, is_on)] = (t, velocity)
        if is_on and len(self._sent) > FORGET_AFTER:  # forget what can no longer come back
            horizon = t - HORIZON_S
            self._sent = {k: v for k, v in self._sent.items() if v[0] >= horizon}

    def is_echo(self, data: Sequence[int], t: float) -> bool:
        """The same key and velocity within the echo window, on improv's channel.

        The velocity keeps a player who strikes the key improv just played (at a
        velocity of their own) from being taken for the echo.
        """
        if len(data) < 3 or not self._sent:
            return False
        kind = data[0] & 0xF0
        if kind not in (NOTE_OFF, NOTE_ON) or (data[0] & 0x0F) != self.channel:
            return False
        pitch = data[1]
        is_on = kind == NOTE_ON and data[2] > 0
        sent = self._sent.get((pitch, is_on))
        if sent is not None and abs(t - sent[0]) <= self.window_s and (not is_on or data[2] == sent[1]):
            del self._sent[(pitch, is_on)]
            self.ignored += 1
            if is_on:
                self._held.add(pitch)
            else:
                self._held.discard(pitch)
            return True
        if not is_on and pitch in self._held:  # the late note-off of an echoed note
            self._held.discard(pitch)
            return True
        return False
