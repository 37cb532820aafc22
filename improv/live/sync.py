"""Which timing a session's settings ask for: the one place that knows every strategy, chosen once at start."""

from __future__ import annotations

import queue
from collections.abc import Callable, Sequence
from typing import Any

from improv.live.settings import EngineSettings
from improv.live.timing import FollowClock, FreeTime, LeadClock


def choose_timing(settings: EngineSettings, send_now: Callable[[Sequence[int]], None],
                  events: queue.SimpleQueue[Any], wake: Callable[[], None],
                  clock: Callable[[], float]) -> FreeTime:
    """The timing a session's settings ask for: follow a clock or a Link session, be a clock, or play free.

    `wake` rouses the engine's loop from another thread (a Link peer stopped); `clock` is the engine's.
    """
    if settings.sync == "clock":
        return FollowClock(events)
    if settings.sync == "link":
        from improv.live.ableton_link import FollowLink  # the binding loads only when asked for

        return FollowLink(settings.link_tempo_bpm, settings.link_quantum, events, wake, clock)
    if settings.clock_out_bpm is not None:
        return LeadClock(settings.clock_out_bpm, send_now, events)
    return FreeTime()
