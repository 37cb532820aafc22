"""The screens over the main one: help, the MIDI port picker, and the MIDI learn action picker."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from improv.controls.actions import Action
from improv.errors import ImprovError
from improv.tui.keys import KEY_COMMANDS
from improv.tui.computer_piano import NOTE_S
from improv.tui.widgets import BOTH_GLYPH, IMPROV_GLYPH, PLAYER_GLYPH

VIRTUAL = "\0virtual"  # the option id of "a virtual port" (no real port name starts with NUL)


def help_table() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for command in KEY_COMMANDS:
        table.add_row(command.shown, command.help)
    return table


PIANO_HELP = (
    "Computer-keyboard piano (tab): a s d f g h j k l ; ' are white keys from C, w e t y u o p the black "
    f"keys, z x move an octave. Terminals do not report key releases, so each key plays {NOTE_S * 1000:.0f} ms; "
    "hold it and it sustains after the key repeat starts. While it is on, the other letters do nothing."
)
SCREEN_HELP = (
    f"Piano roll: {PLAYER_GLYPH} your notes, {IMPROV_GLYPH} improv's, {BOTH_GLYPH} both; newest at the right. "
    "Surprise: improv's mean negative log-likelihood per note in its last answer (nats, at temperature 1). "
    "Late: answer notes sent over 10 ms after their time; dropped: MIDI lost in or out."
)


class HelpScreen(ModalScreen[None]):
    """Every key, and what the screen shows."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(help_table(), id="help-keys")
            yield Static(PIANO_HELP, classes="help-text")
            yield Static(SCREEN_HELP, classes="help-text")
        yield Label("esc, ? or q: close", id="help-close")

    def on_mount(self) -> None:
        self.query_one("#help").border_title = "keys"

    def action_close(self) -> None:
        self.dismiss(None)


# -- MIDI learn --------------------------------------------------------------------------------

LEARN_CHOICES: tuple[tuple[Action, str], ...] = (
    (Action.TEMPERATURE, "a knob: sets the temperature"),
    (Action.PANIC, "a button or key: all notes off"),
    (Action.MODE, "a button or key: call / duet"),
    (Action.RESET, "a button or key: clear the seed"),
    (Action.PAUSE, "a button or key: listen / pause"),
    (Action.REPLY_LENGTH, "a knob: notes per answer"),
    (Action.FOLLOW, "a knob: how closely improv follows you"),
)


class LearnPicker(ModalScreen[Action | None]):
    """Choose what the next control moved will do."""

    BINDINGS = [Binding("escape,l", "cancel", "cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="learn"):
            yield OptionList(
                *(Option(Text.assemble((f"{action.value:<13}", "bold"), meaning), id=action.value)
                  for action, meaning in LEARN_CHOICES),
                id="learn-actions",
            )
            yield Label("enter: learn it, then move the control · esc: cancel", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#learn").border_title = "MIDI learn: what should the control do?"
        self.query_one(OptionList).highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(Action(event.option_id or ""))

    def action_cancel(self) -> None:
        self.dismiss(None)


# -- ports ---------------------------------------------------------------------------------------

class PortNow(NamedTuple):
    """A port in use, as the picker marks it."""

    description: str  # "improv:in (virtual)", "KeyStep:out connected", "none"
    name: str | None  # the full port name, None when there is no port
    virtual: bool


Lister = Callable[[str | None], tuple[list[str], list[str]]]
Switcher = Callable[[str, str | None, str | None], str]  # (kind, port or None for virtual, api) -> description


class PortPicker(ModalScreen[None]):
    """The inputs and outputs there are; enter switches to one at once. `a` tries another MIDI API."""

    BINDINGS = [
        Binding("escape,p", "close", "close"),
        Binding("a", "next_api", "API"),
        Binding("r", "refresh", "refresh"),
    ]

    def __init__(
        self,
        list_ports: Lister,
        switch: Switcher,
        current: Callable[[], tuple[PortNow, PortNow]],
        api: str | None,
        apis: Sequence[str],
    ) -> None:
        super().__init__()
        self._list_ports = list_ports
        self._switch = switch
        self._current = current  # () -> (input, output)
        self.api = api
        self.apis = list(apis)

    def compose(self) -> ComposeResult:
        with Vertical(id="port-picker"):
            with Horizontal(id="port-lists"):
                with Vertical(classes="port-column"):
                    yield Label("listen to (input)", classes="port-heading")
                    yield OptionList(id="inputs")
                with Vertical(classes="port-column"):
                    yield Label("answer on (output)", classes="port-heading")
                    yield OptionList(id="outputs")
            yield Static("", id="port-message")
            yield Label("enter: switch · tab: other list · a: other API · r: refresh · esc: close", classes="hint")

    def on_mount(self) -> None:
        self.refresh_lists()

    def refresh_lists(self) -> None:
        api = self.api or "default"
        others = [name for name in self.apis if name != self.api]
        self.query_one("#port-picker").border_title = f"MIDI ports ({api} API" + ("; a: try " + ", ".join(others) if others else "") + ")"
        current_in, current_out = self._current()
        try:
            inputs, outputs = self._list_ports(self.api)
            problem = ""
        except ImprovError as error:
            inputs, outputs, problem = [], [], str(error)
        for widget_id, names, current, virtual in (
            ("#inputs", inputs, current_in, "improv:in"),
            ("#outputs", outputs, current_out, "improv:out"),
        ):
            option_list = self.query_one(widget_id, OptionList)
            highlighted = option_list.highlighted
            option_list.clear_options()
            option_list.add_option(Option(self._label(f"virtual port {virtual}", current.virtual), id=VIRTUAL))
            for name in names:
                option_list.add_option(Option(self._label(name, not current.virtual and current.name == name), id=name))
            if not names:
                option_list.add_option(Option(Text("(no ports)" if not problem else "(cannot list ports)", "dim"),
                                              disabled=True))
            option_list.highlighted = min(highlighted or 0, option_list.option_count - 1)
        self.query_one("#port-message", Static).update(
            Text(problem, "bold") if problem else f"now: in {current_in.description} · out {current_out.description}"
        )

    @staticmethod
    def _label(name: str, current: bool) -> Text:
        return Text.assemble(("● " if current else "  ", "bold"), name)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        kind = "input" if event.option_list.id == "inputs" else "output"
        spec = None if event.option_id == VIRTUAL else event.option_id
        try:
            self._switch(kind, spec, self.api)
        except ImprovError as error:
            self.query_one("#port-message", Static).update(Text(str(error), "bold"))
            return
        self.refresh_lists()

    def action_next_api(self) -> None:
        if not self.apis:
            return
        index = self.apis.index(self.api) + 1 if self.api in self.apis else 0
        self.api = self.apis[index % len(self.apis)]
        self.refresh_lists()

    def action_refresh(self) -> None:
        self.refresh_lists()

    def action_close(self) -> None:
        self.dismiss(None)
