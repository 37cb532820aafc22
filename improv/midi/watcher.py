"""Keep watched MIDI ports connected: check them about once a second from a thread of their own."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Protocol, Self

log = logging.getLogger(__name__)


class Watchable(Protocol):
    def check(self) -> str | None: ...


class PortWatcher:
    """Calls ``check()`` on ports every `interval_s` from its own thread.

    Each status change ("input 'X' disconnected; waiting for it") goes to
    `on_change` (default: log it). A context manager; `stop` is idempotent.
    """

    def __init__(
        self,
        ports: Iterable[Watchable],
        on_change: Callable[[str], None] | None = None,
        interval_s: float = 1.0,
    ) -> None:
        self.ports = list(ports)
        self.on_change = on_change or (lambda message: log.warning("%s", message))
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> list[str]:
        """Check every port once; report and return the status changes."""
        changes = [change for port in self.ports if (change := port.check()) is not None]
        for change in changes:
            self.on_change(change)
        return changes

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception:  # keep watching: a dead watcher would never reconnect anything
                log.exception("checking MIDI ports failed")

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="improv-port-watcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
