"""The widgets of the main screen: a line of pieces that wraps between pieces, and the piano roll."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

from improv.tui.computer_piano import note_name
from improv.live.recording import IMPROV, PLAYER, Recording, RollNote

PLAYER_GLYPH = "█"
IMPROV_GLYPH = "▒"
BOTH_GLYPH = "▓"


class FlowLine(Widget):
    """Pieces of text in a row, wrapped between pieces (never inside one) to fit the width."""

    DEFAULT_CSS = """
    FlowLine {
        height: auto;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, separator: str = "  ", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.separator = separator
        self._pieces: tuple[Text, ...] = ()

    @property
    def text(self) -> str:
        """The pieces as plain text on one line (what a test or a screen reader wants)."""
        return self.separator.join(piece.plain for piece in self._pieces)

    def set_pieces(self, pieces: Sequence[Text | str]) -> None:
        new = tuple(Text(piece) if isinstance(piece, str) else piece for piece in pieces)
        if new != self._pieces:
            self._pieces = new
            self.refresh(layout=True)

    def lines(self, width: int) -> list[Text]:
        lines: list[Text] = []
        line = Text()
        for piece in self._pieces:
            if line.plain and line.cell_len + len(self.separator) + piece.cell_len > width:
                lines.append(line)
                line = Text()
            if line.plain:
                line.append(self.separator)
            line.append_text(piece)
        lines.append(line)
        return lines

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.lines(width))

    def render(self) -> Text:
        return Text("\n").join(self.lines(self.content_size.width))


# -- the piano roll -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PitchWindow:
    """Which pitches the rows show: the bottom row starts at `lowest`, each row spans `per_row` semitones."""

    lowest: int
    per_row: int
    rows: int

    def row_of(self, pitch: int) -> int | None:
        """The row (0 = top) showing `pitch`, or None if it is off the roll."""
        band = (pitch - self.lowest) // self.per_row
        if not 0 <= band < self.rows:
            return None
        return self.rows - 1 - band

    def band(self, row: int) -> range:
        low = self.lowest + (self.rows - 1 - row) * self.per_row
        return range(low, low + self.per_row)

    def fits(self, low: int, high: int) -> bool:
        return self.lowest <= low and high < self.lowest + self.rows * self.per_row


def fit_pitches(low: int, high: int, rows: int, previous: PitchWindow | None = None) -> PitchWindow:
    """A window showing pitches `low`..`high` on `rows` rows; keeps `previous` while everything fits in it
    and it is not much coarser than needed, so the roll does not jump with every note."""
    rows = max(rows, 1)
    per_row = max(1, math.ceil((high - low + 1) / rows))
    if previous is not None and previous.rows == rows and previous.per_row == per_row and previous.fits(low, high):
        return previous
    shown = rows * per_row
    lowest = (low + high + 1) // 2 - shown // 2
    lowest = min(max(lowest, 0), max(128 - shown, 0))
    return PitchWindow(lowest, per_row, rows)


def roll_cells(
    notes: Sequence[RollNote], now: float, columns: int, window: PitchWindow, seconds_per_column: float
) -> list[list[str]]:
    """The roll as rows of cells ('' empty, else PLAYER/IMPROV/both), the last column ending at `now`."""
    grid: list[list[set[str]]] = [[set() for _ in range(columns)] for _ in range(window.rows)]
    start = now - columns * seconds_per_column
    for note in notes:
        row = window.row_of(note.pitch)
        if row is None:
            continue
        first = max(int((note.start - start) / seconds_per_column), 0)
        if first >= columns:
            continue
        last = min(math.ceil((note.end_or(now) - start) / seconds_per_column) - 1, columns - 1)
        for column in range(first, max(last, first) + 1):  # a note shorter than a column still shows
            grid[row][column].add(note.who)
    return [["both" if len(cell) > 1 else next(iter(cell), "") for cell in row] for row in grid]


class PianoRoll(Widget):
    """The last seconds of the session scrolling right to left: the player's notes and improv's,
    in two colours and two glyphs (█ and ▒, ▓ where both sound); held notes reach the right edge."""

    COMPONENT_CLASSES = {"piano-roll--player", "piano-roll--improv", "piano-roll--both", "piano-roll--label"}
    DEFAULT_CSS = """
    PianoRoll {
        height: 1fr;
    }
    """
    SECONDS_PER_COLUMN = 0.1
    LABEL_WIDTH = 4  # "C#4" and a rule
    CENTRE_PITCH = 60

    def __init__(self, recording: Recording, clock: Callable[[], float], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.recording = recording
        self.clock = clock
        self._window: PitchWindow | None = None
        self.showing_notes = False  # whether the last frame had notes (then time moving changes the picture)
        self.border_subtitle = f"{PLAYER_GLYPH} you  {IMPROV_GLYPH} improv"

    @property
    def columns(self) -> int:
        return max(self.content_size.width - self.LABEL_WIDTH, 1)

    @property
    def span_s(self) -> float:
        return self.columns * self.SECONDS_PER_COLUMN

    def on_resize(self) -> None:
        self.border_title = f"last {self.span_s:.0f} s"

    def frame(self) -> int:
        """Which column-width slice of time it is: the roll has moved when this changes."""
        return int(self.clock() / self.SECONDS_PER_COLUMN)

    def visible_notes(self) -> list[RollNote]:
        now = self.clock()
        return self.recording.visible(now - self.span_s, now)

    def render(self) -> Text:
        rows = self.content_size.height
        if rows <= 0:
            return Text()
        now = self.clock()
        notes = self.visible_notes()
        self.showing_notes = bool(notes)
        if notes:
            pitches = [note.pitch for note in notes]
            low, high = min(pitches), max(pitches)
        else:
            low = high = self.CENTRE_PITCH
        self._window = window = fit_pitches(low, high, rows, self._window)
        cells = roll_cells(notes, now, self.columns, window, self.SECONDS_PER_COLUMN)
        styles = {
            PLAYER: (PLAYER_GLYPH, self.get_component_rich_style("piano-roll--player")),
            IMPROV: (IMPROV_GLYPH, self.get_component_rich_style("piano-roll--improv")),
            "both": (BOTH_GLYPH, self.get_component_rich_style("piano-roll--both")),
        }
        label_style = self.get_component_rich_style("piano-roll--label")
        text = Text(no_wrap=True, overflow="crop")
        for row, line in enumerate(cells):
            if row:
                text.append("\n")
            text.append(self._label(window, row).ljust(self.LABEL_WIDTH - 1) + "│", label_style)
            run_kind, run_length = "", 0
            for kind in [*line, None]:  # runs of one kind become one span
                if kind == run_kind:
                    run_length += 1
                    continue
                if run_length:
                    if run_kind:
                        glyph, style = styles[run_kind]
                        text.append(glyph * run_length, style)
                    else:
                        text.append(" " * run_length, Style())
                run_kind, run_length = kind or "", 1
        return text

    @staticmethod
    def _label(window: PitchWindow, row: int) -> str:
        """The C in the row's band (C4, C5, ...); the top and bottom rows name their lowest pitch."""
        band = window.band(row)
        c = next((pitch for pitch in band if pitch % 12 == 0 and 0 <= pitch <= 127), None)
        if c is not None:
            return note_name(c)
        if row in (0, window.rows - 1) and 0 <= band.start <= 127:
            return note_name(band.start)
        return ""
