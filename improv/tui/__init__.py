"""The terminal UI: `improv` with no command opens it around a live session.

`run_tui` builds the session (model, ports, engine), runs the Textual app
(`improv.tui.app.ImprovApp`) and closes the session however the app ends,
so no note is left sounding.
"""

from __future__ import annotations

import argparse

__all__ = ["run_tui"]


def run_tui(args: argparse.Namespace) -> int:
    """Open the screen; a port that cannot open is shown on it (with the port picker) instead of failing."""
    from improv.live.session import LiveSession, ignore_exit_signals, install_exit_handlers
    from improv.tui.app import ImprovApp

    session = LiveSession(args, ports_optional=True)
    try:
        install_exit_handlers(session)
        session.start()
        # The app only silences the session: closing the ports can stall (see CLOSE_STALL_EXIT_S), and
        # a stall must not end the process while the terminal is still in the app's mode.
        app = ImprovApp(session, handle_signals=True, close_session=False)
        code = app.run()
        return code if isinstance(code, int) else (app.return_code or 0)
    finally:
        ignore_exit_signals()
        session.close()
