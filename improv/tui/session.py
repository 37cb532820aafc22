"""What the screen needs of a live session: the parts it reads and the calls it makes (tests pass a fake)."""

from __future__ import annotations


import queue
from pathlib import Path
from typing import Any, Protocol


from improv.controls.control_map import ControlMap
from improv.controls.actions import Learned
from improv.live.engine import (
    Engine,
)


class Port(Protocol):
    @property
    def description(self) -> str: ...

    @property
    def port_name(self) -> str: ...

    @property
    def virtual(self) -> bool: ...


class Session(Protocol):
    """What the app needs of a live session (`improv.live.session.LiveSession`; tests pass a fake)."""

    engine: Engine
    input: Any  # Port | None
    output: Any  # Port | None
    messages: queue.SimpleQueue[str]
    problems: list[str]
    control_map: ControlMap
    api: str | None
    unsent: int
    synth: Any  # improv.sound.synth.Synth | None

    def start_synth(self) -> str: ...

    def stop_synth(self) -> None: ...

    def list_ports(self, api: str | None = None) -> tuple[list[str], list[str]]: ...

    def switch_input(self, spec: str | None, api: str | None = None) -> str: ...

    def switch_output(self, spec: str | None, api: str | None = None) -> str: ...

    def save_learned(self, learned: Learned) -> Path: ...

    def close(self) -> None: ...
