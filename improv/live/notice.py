"""Saying why a start takes long, before anything else is on the terminal.

A player who types `improv` and sees nothing for ten seconds thinks it hangs. The first start after
an install compiles the model's step (numba), and a model file played for the first time is read
once with torch (then cached): both only once, both silent unless something says so.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

SLOW_START_S = 1.5  # a start still busy after this says why (the screen has not started yet)
SLOW_START = ("improv is preparing the model: the first start after an install compiles its step (about 10 s), "
              "and a model file played for the first time is read once with torch")


@contextlib.contextmanager
def notice_if_slow(after_s: float, message: str, stream: TextIO | None = None) -> Iterator[None]:
    """Write `message` as a line if the block is still running after `after_s`; to stdout by default,
    with what the session says while it runs: stderr keeps errors alone, one line each."""
    timer = threading.Timer(after_s, lambda: print(message, file=stream or sys.stdout, flush=True))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
