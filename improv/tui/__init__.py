"""The terminal UI: `improv` with no command opens it around a live session.

`run_tui` builds the session (model, ports, engine), runs the Textual app
(`improv.tui.app.ImprovApp`) and closes the session however the app ends,
so no note is left sounding.
"""

from __future__ import annotations

import argparse

from typing import Any

__all__ = ["NO_MIDI_HINT", "prepare_without_midi", "run_tui"]

NO_MIDI_HINT = "no MIDI ports (p, --api jack, modprobe snd-seq)"


def prepare_without_midi(session: Any) -> bool:
    """With no MIDI port at all (a container, WSL, a fresh cloud box), make the session playable from the
    computer keyboard: the built-in synth sounds the answers. True if the screen should start with the piano on.

    Where no audio output works either, the session's problems say so in one line.
    """
    if session.input is not None or session.output is not None:
        return False
    session.problems[:] = [p for p in session.problems if not p.startswith("no MIDI")]
    if session.synth is None:
        from improv.errors import ImprovError

        try:
            session.start_synth()
        except ImprovError as error:
            session.problems.append(f"no sound: {str(error).split(' (')[0]}")  # the drivers' reasons are long
    session.problems.insert(0, NO_MIDI_HINT)
    return True


def run_tui(args: argparse.Namespace) -> int:
    """Open the screen; a port that cannot open is shown on it (with the port picker) instead of failing."""
    from improv.live.session import LiveSession, ignore_exit_signals, install_exit_handlers
    from improv.tui.app import ImprovApp

    session = LiveSession(args, ports_optional=True)
    try:
        install_exit_handlers(session)
        piano = prepare_without_midi(session)
        session.start()
        # The app only silences the session: closing the ports can stall (see CLOSE_STALL_EXIT_S), and
        # a stall must not end the process while the terminal is still in the app's mode.
        app = ImprovApp(session, handle_signals=True, close_session=False, piano=piano)
        code = app.run()
        return code if isinstance(code, int) else (app.return_code or 0)
    finally:
        ignore_exit_signals()
        session.close()
