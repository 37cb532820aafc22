"""The computer-keyboard piano: two rows of letters as white and black keys.

Terminals report key presses but not releases, so every key plays a note of
a fixed length, `NOTE_S`; a key held down repeats (after the terminal's
repeat delay), and each repeat keeps the note sounding for another `NOTE_S`.
"""

from __future__ import annotations

from dataclasses import dataclass

NOTE_S = 0.3
VELOCITY = 90
WHITE_KEYS = "asdfghjkl;'"  # C D E F G A B C D E F
BLACK_KEYS = {"w": 1, "e": 3, "t": 6, "y": 8, "u": 10, "o": 13, "p": 15}
_WHITE_STEPS = (0, 2, 4, 5, 7, 9, 11, 12, 14, 16, 17)
OFFSETS: dict[str, int] = {**dict(zip(WHITE_KEYS, _WHITE_STEPS)), **BLACK_KEYS}
OCTAVE_DOWN, OCTAVE_UP = "z", "x"
LOWEST_C, HIGHEST_C = 12, 108
_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(pitch: int) -> str:
    """MIDI pitch -> scientific name, middle C = C4: 60 -> 'C4', 61 -> 'C#4'."""
    return f"{_NAMES[pitch % 12]}{pitch // 12 - 1}"


@dataclass
class ComputerPiano:
    """Which letter plays which pitch, and the octave z/x move."""

    base: int = 60  # the pitch of 'a'

    def pitch(self, character: str) -> int | None:
        """The pitch `character` plays, or None if it is not a piano key."""
        offset = OFFSETS.get(character)
        if offset is None:
            return None
        return min(self.base + offset, 127)

    def shift(self, character: str) -> bool:
        """Move an octave for 'z'/'x'; True if `character` was one of them."""
        if character == OCTAVE_DOWN:
            self.base = max(self.base - 12, LOWEST_C)
        elif character == OCTAVE_UP:
            self.base = min(self.base + 12, HIGHEST_C)
        else:
            return False
        return True

    @property
    def octave_name(self) -> str:
        return note_name(self.base)
