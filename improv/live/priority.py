"""The engine thread's scheduling: real-time where the system allows it, and a short GIL switch interval.

An answer note has a time. On a busy machine (a DAW, a browser, a build) a normal thread woken for
it can wait for a core for tens of milliseconds, and a note sounds late. Audio software runs its
time-critical thread under a real-time policy (SCHED_FIFO), which Linux grants to root and to users
with an rtprio limit (the `audio` group on most distributions, as JACK needs). improv asks for the
lowest real-time priority: above every normal thread, below JACK's and the audio driver's own.
Refused, it asks for a higher nice value instead, and failing that plays at normal priority.

Python threads also share one lock (the GIL): a thread that wants it waits up to the switch
interval (5 ms by default) while another runs Python, the screen's or the port watcher's. A live
session shortens it, so the engine waits at most a millisecond.
"""

from __future__ import annotations

import os
import sys
import threading

REALTIME_PRIORITY = 1  # the lowest SCHED_FIFO priority: JACK (default 10) and its clients stay above
NICE = -10  # the fallback: ten steps above a normal thread's share of a busy core
SWITCH_INTERVAL_S = 0.001


def promote(thread: threading.Thread) -> str:
    """Ask for real-time scheduling of `thread` (else a higher nice value) and shorten the switch
    interval; what was granted, in words."""
    shorten_switch_interval()
    native_id = thread.native_id
    if native_id is None:
        return "normal priority (the thread has not started)"
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_FIFO"):
        try:
            os.sched_setscheduler(native_id, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
            return f"real-time priority (SCHED_FIFO {REALTIME_PRIORITY})"
        except OSError:
            pass
    if hasattr(os, "setpriority"):
        try:
            os.setpriority(os.PRIO_PROCESS, native_id, NICE)  # per thread on Linux
            return f"nice {NICE} (real-time priority refused: see `ulimit -r`)"
        except OSError:
            pass
    return "normal priority (real-time scheduling refused: see `ulimit -r`)"


def shorten_switch_interval() -> None:
    """Let the engine thread take the GIL within a millisecond of asking (process-wide)."""
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
