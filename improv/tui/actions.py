"""What the keys of the main screen do: the computer-keyboard piano and every `action_*` of the key table."""

from __future__ import annotations


from functools import partial
from pathlib import Path
from typing import Any


from improv.controls.actions import Action, Learner
from improv.errors import ImprovError
from improv.live.recording import IMPROV
from improv.tui.computer_piano import NOTE_S, VELOCITY
from improv.tui.screens import HelpScreen, LearnPicker, PortNow, PortPicker



def default_sessions_dir() -> Path:
    """Where `s` saves: <user data dir>/sessions, e.g. ~/.local/share/improv/sessions on Linux."""
    import platformdirs

    return Path(platformdirs.user_data_dir("improv")) / "sessions"


class KeyActions:
    """Part of `ImprovApp`: each action sends a command to the engine or opens a screen; no musical logic."""

    def play_key(self, pitch: int) -> None:
        """A note of NOTE_S from the computer keyboard, as the player's; a repeat keeps it sounding."""
        sounding = self._piano_notes.pop(pitch, None)
        if sounding is not None:
            sounding.stop()
        else:
            self.session.engine.key(pitch, VELOCITY)
        self._piano_notes[pitch] = self.set_timer(NOTE_S, partial(self._release_key, pitch))

    def _release_key(self, pitch: int) -> None:
        self._piano_notes.pop(pitch, None)
        self.session.engine.key(pitch, 0)

    def action_pause(self) -> None:
        self.session.engine.command("pause")

    def action_temperature(self, step: float) -> None:
        self.session.engine.command("temperature_step", step)

    def action_tempo(self, step_bpm: float) -> None:
        """Nudge the Link session's tempo (every peer's); the engine says what it did."""
        self.session.engine.command("tempo_step", step_bpm)

    def action_synth(self) -> None:
        """The built-in synth on or off; a message, never a crash, when it cannot start."""
        session = self.session
        if session.synth is not None:
            session.stop_synth()
            self._show_ports()
            self.say("synth off: improv sounds only on its MIDI output")
            return
        try:
            description = session.start_synth()
        except ImprovError as error:
            self.say(f"no synth: {error}", error=True)
            return
        self._show_ports()
        self.say(f"synth on: {description}")

    def action_follow(self, step: float) -> None:
        self.session.engine.command("follow_step", step)

    def action_mode(self) -> None:
        self.session.engine.command("mode")

    def action_reroll(self) -> None:
        self.session.engine.command("reroll")
        self.say("re-rolling the last answer")

    def action_reset(self) -> None:
        self.session.engine.command("reset")
        self.say("seed cleared: improv forgets what it heard")

    def action_key_lock(self) -> None:
        self.session.engine.command("key_lock")

    def action_panic(self) -> None:
        """All notes off now, from this thread (the output is thread-safe), then in the engine too,
        so the answer under way stops instead of going on."""
        engine = self.session.engine
        engine.silence()
        engine.command("panic")
        self.recording.cut(IMPROV, self.clock())
        self.say("panic: all notes off")

    def action_piano(self) -> None:
        self.piano_on = not self.piano_on
        if self.piano_on:
            self.say(f"piano on: a = {self.piano.octave_name}, each key plays {NOTE_S * 1000:.0f} ms; "
                     "tab gives the letters back")  # one line at 80 columns
        else:
            self.say("piano off: letters are commands again")

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_save(self) -> None:
        if not len(self.recording):
            self.say("nothing to save yet: play a few notes first")
            return
        directory = self.sessions_dir or default_sessions_dir()
        try:
            path = self.recording.save(directory, self.clock())
        except OSError as error:
            self.say(f"cannot save the session in {directory}: {error.strerror or error}", error=True)
            return
        tracks = self.recording.tracks(self.clock())
        self.say(f"saved {len(tracks['player'])} + {len(tracks['improv'])} notes to {path}")

    def action_learn(self) -> None:
        if self.learning is not None:
            self.session.engine.command("learn", None)
            self.learning = None
            self.say("MIDI learn cancelled")
            return

        def chosen(action: Action | None) -> None:
            if action is None:
                return
            self.session.engine.command("learn", Learner(action))
            self.learning = action
            kind = "knob (a CC)" if action.continuous else "knob, button or key"
            self.say(f"MIDI learn: move the {kind} that should control {action} (l: cancel)")

        self.push_screen(LearnPicker(), chosen)

    def action_ports(self) -> None:
        self.push_screen(PortPicker(self.session.list_ports, self.switch_port, self._ports_now,
                                    self.session.api, self.apis))

    def _ports_now(self) -> tuple[PortNow, PortNow]:
        def now(port: Any) -> PortNow:
            if port is None:
                return PortNow("none", None, False)
            return PortNow(port.description, port.port_name, port.virtual)

        return now(self.session.input), now(self.session.output)

    def switch_port(self, kind: str, spec: str | None, api: str | None) -> str:
        """Open another input or output now; ImprovError (old port kept) if it cannot open."""
        switch = self.session.switch_input if kind == "input" else self.session.switch_output
        try:
            description = switch(spec, api)
        except ImprovError as error:
            self.say(f"{kind} not switched: {error}", error=True)
            raise
        self.say(f"{kind}: {description}")
        self._show_ports()
        return description

    async def action_quit(self) -> None:
        self.release_and_exit()

    async def action_quit_anyway(self) -> None:
        self.release_and_exit()

    # -- ending ----------------------------------------------------------------------------------
