"""When a MIDI message arrived, from the backend's delta times rather than the callback's own clock.

python-rtmidi calls improv's input callback on the backend's thread once that thread holds
Python's GIL; on a busy moment (the engine sampling, the screen drawing) that is up to a switch
interval later, on a busy machine more. A clock pulse stamped then looks late, and a late pulse
can pass for a lost one. The backend (JACK, ALSA, CoreMIDI, WinMM) measures the time between
messages itself, before any of that: rtmidi hands it over as each message's delta time. Their
running sum is a clock that only lacks an origin, and the origin is the smallest (stamp - sum)
seen, since a callback's stamp is never early. It may creep later by `DRIFT` a second, so that
two clocks running apart by a few parts in a million are followed.

Every message must pass through here, those improv drops included (active sensing): the backend
counts the time since the last message it saw. rtmidi's own filter would lose the deltas of the
messages it drops, so improv filters after this.
"""

from __future__ import annotations

DRIFT = 1e-4  # the origin may move later by this many seconds per second
MAX_EARLY_S = 0.25  # a time this far before its stamp is no lateness but a broken delta (a port reopened): re-anchor


class ArrivalClock:
    """Turns (delta time, callback stamp) pairs into arrival times on the stamps' clock (`time.monotonic`)."""

    def __init__(self) -> None:
        self._sum = 0.0
        self._origin: float | None = None
        self._last_stamp = 0.0

    def arrival(self, delta_s: float, stamp_s: float) -> float:
        """The arrival time of a message with backend delta `delta_s`, whose callback ran at `stamp_s`."""
        self._sum += delta_s if delta_s > 0.0 else 0.0
        candidate = stamp_s - self._sum
        origin = self._origin
        if origin is None:
            origin = candidate
        else:
            origin = min(origin + DRIFT * max(stamp_s - self._last_stamp, 0.0), candidate)
            if candidate - origin > MAX_EARLY_S:
                origin = candidate
        self._origin = origin
        self._last_stamp = stamp_s
        return self._sum + origin

    def reset(self) -> None:
        """Forget the origin (the port was reopened: the backend's deltas start again)."""
        self._sum = 0.0
        self._origin = None
