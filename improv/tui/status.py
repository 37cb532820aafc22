"""The main screen's status lines: ports, state, readings, the key bar and the one-line messages."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from improv.controls.actions import Action
from improv.live.clock import Transport
from improv.tui.keys import KEY_BAR, PIANO_BAR
from improv.tui.readouts import (
    gauge,
    key_text,
    number,
    source_name,
    temperature_fraction,
)


GAUGE_WIDTH = 20
FOLLOW_GAUGE_WIDTH = 10


def _bar(items: Sequence[tuple[str, str]]) -> list[Text]:
    return [Text.assemble((key, "bold reverse"), " ", label) for key, label in items]


def combine_problems(problems: Sequence[str]) -> str:
    """'no MIDI output: X' and 'no MIDI input: X' -> 'no MIDI input or output: X'; others joined with ' · '."""
    reasons = {problem.partition(": ")[2] for problem in problems}
    if len(problems) == 2 and len(reasons) == 1:
        return f"no MIDI input or output: {reasons.pop()}"
    return " · ".join(problems)


def _beats(transport: Transport) -> str:
    return "".join("●" if b == transport.beat else "·" for b in range(1, transport.beats_per_bar + 1))


def link_text(transport: Transport | None) -> Text:
    """'link 2 peers 100.0 BPM beat 3 ··●·', or '... stopped'."""
    if transport is None or transport.bpm is None:
        return Text("link: joining")
    peers = transport.peers or 0
    where = f"beat {transport.beat} {_beats(transport)}" if transport.running else "stopped"
    return Text.assemble(f"link {peers} peer{'' if peers == 1 else 's'} ", (f"{transport.bpm:.1f} BPM", "bold"),
                         f" {where}")


class StatusLines:
    """Part of `ImprovApp`: how the lines at the top and the status line are drawn from what it knows."""

    def _startup_hint(self) -> tuple[str, bool]:
        if self._piano_at_start and self.session.problems:  # no MIDI at all: the piano and the synth play instead
            hint, *others = self.session.problems  # `prepare_without_midi` put its hint first
            if self.session.synth is not None:
                others.insert(0, "letters play the synth")
            return " · ".join([hint, *others]), self.session.synth is None
        ports = [p for p in self.session.problems if p.startswith("no MIDI")]
        others = [p for p in self.session.problems if not p.startswith("no MIDI")]
        if ports or others:
            parts = ([combine_problems(ports).replace(": ", " (press p): ", 1)] if ports else []) + [
                p.replace(": ", " (a retries): ", 1) if p.startswith("no synth") else p for p in others]
            return " · ".join(parts), True
        port = self.session.input
        if port is not None and port.virtual:
            return f"connect a keyboard to {port.port_name}, or press tab to play here · ? help", False
        if port is not None and not getattr(port, "connected", True):
            return f"waiting for {port.port_name}: plug it in, or press p to pick another · ? help", False
        return "play a phrase and pause: improv answers · ? help", False

    # -- what the engine says -------------------------------------------------------------

    def say(self, text: str, error: bool = False) -> None:
        """One line in the status area (errors stand out, also without colour)."""
        self._status.update(Text(f"! {text}" if error else text, no_wrap=False))
        self._status.set_class(error, "-error")

    @property
    def status_text(self) -> str:
        content = self._status.content
        return content.plain if isinstance(content, Text) else str(content)

    def _show_ports(self) -> None:
        pieces = []
        for label, port in (("in", self.session.input), ("out", self.session.output)):
            description = port.description if port is not None else "none (press p)"
            if port is None and label == "out" and self.session.synth is not None:
                description = "built-in synth (p: a MIDI port)"
            pieces.append(Text.assemble((label, "bold"), " ", description))
        self._ports.set_pieces(pieces)

    def _show_state(self) -> None:
        activity = Text("PAUSED (space: listen)", "bold reverse") if self.paused else Text("listening")
        pieces: list[Text | str] = [Text.assemble("mode ", (self.mode, "bold")), activity, key_text(self.key)]
        if self.piano_on:
            pieces.append(Text.assemble(("piano on", "bold"), f", a = {self.piano.octave_name}"))
        else:
            pieces.append("piano off")
        if self.learning is not None:
            pieces.append(Text(f"learning {self.learning}: move a control (l: cancel)", "bold"))
        clock = self._clock_text()
        if clock is not None:
            pieces.append(clock)
        self._state.set_pieces(pieces)
        bounds = self.session.control_map.temperature_bounds
        control = source_name(self.session.control_map.source(Action.TEMPERATURE))
        self._temperature.set_pieces([
            Text.assemble(("temperature", "bold"), f" {self.temperature:.2f} ",
                          gauge(temperature_fraction(self.temperature, bounds), GAUGE_WIDTH), f" {control}"),
            f"surprise {number(self.surprise, 2)} nats",
            Text.assemble(("follow", "bold"), f" {self.follow:.2f} ", gauge(self.follow, FOLLOW_GAUGE_WIDTH),
                          f" {source_name(self.session.control_map.source(Action.FOLLOW))}"),
        ])

    def _clock_text(self) -> Text | None:
        """Tempo and beat when answers keep time with a clock or a Link session; None when playing free."""
        settings = self.session.engine.settings
        if settings.sync == "off" and settings.clock_out_bpm is None:
            return None
        transport = self.transport
        if settings.sync == "link":
            return link_text(transport)
        who = "clock out" if settings.clock_out_bpm is not None else "clock"
        if transport is None or transport.bpm is None:
            return Text(f"{who}: waiting for MIDI clock" if settings.sync == "clock" else f"{who}: starting")
        if not transport.running:
            return Text.assemble(f"{who} ", (f"{transport.bpm:.1f} BPM", "bold"), " stopped")
        return Text.assemble(f"{who} ", (f"{transport.bpm:.1f} BPM", "bold"),
                             f" bar {transport.bar} beat {transport.beat} {_beats(transport)}")

    def _show_readings(self) -> None:
        engine = self.session.engine
        output = self.session.output
        dropped = (engine.dropped_input + engine.state().send_errors + self.session.unsent
                   + (getattr(output, "dropped", 0) if output is not None else 0))
        late = getattr(engine, "late_notes", 0)
        stats = self.latency
        self._latency.set_pieces([
            f"reply {number(stats.last)} ms (median {number(stats.median)}, p99 {number(stats.p99)})",
            f"model {number(self.step_ms, 2)} ms/note",
            f"late {late}, dropped {dropped}",
            *([f"audio {synth.latency_ms:.1f} ms"] if (synth := self.session.synth) is not None else []),
            *([plan] if (plan := getattr(self, "plan_readout", "")) else []),
        ])

    def _show_keys(self) -> None:
        self._keys.set_pieces(_bar(PIANO_BAR if self.piano_on else KEY_BAR))
