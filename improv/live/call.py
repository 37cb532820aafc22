"""The call: what the player just played, described the way an answer needs it (pure, no time of its own).

Notes played within `CHORD_WINDOW_S` of each other are one onset. The top line (the highest pitch of
each onset) carries the melody and its motifs; a call whose pitches fall in two registers with a
wide gap between them, both sounding at once somewhere, is two hands: a bass and a melody.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from improv.music.keys import MODES, estimate_key

CHORD_WINDOW_S = 0.035  # as the player's side groups chords
HANDS_GAP = 7  # semitones between the two registers of a two-handed call, at least
MIN_HAND_SHARE = 0.15  # each hand holds at least this share of the call's notes


@dataclass(frozen=True, slots=True)
class CallNote:
    onset_s: float
    pitch: int
    duration_s: float = 0.25


@dataclass(frozen=True, slots=True)
class Call:
    """A call's shape: its onsets (pitches, ascending), key, pulse and, for two hands, the split."""

    onsets: tuple[tuple[int, ...], ...]
    onset_times: tuple[float, ...]
    key: tuple[int, str] | None
    split: int | None  # two hands: pitches below this are the bass

    @property
    def pitches(self) -> list[int]:
        return [p for onset in self.onsets for p in onset]

    @property
    def notes(self) -> int:
        return sum(len(onset) for onset in self.onsets)

    @property
    def median(self) -> float:
        return statistics.median(self.pitches)

    @property
    def span(self) -> int:
        pitches = self.pitches
        return max(pitches) - min(pitches)

    @property
    def ioi_s(self) -> float | None:
        """The call's pulse: the median interval between its onsets (None for a single onset)."""
        times = self.onset_times
        gaps = [b - a for a, b in zip(times, times[1:])]
        return statistics.median(gaps) if gaps else None

    def melody(self, onset: Sequence[int]) -> tuple[int, ...]:
        return tuple(p for p in onset if self.split is None or p >= self.split)

    def bass(self, onset: Sequence[int]) -> tuple[int, ...]:
        return tuple(p for p in onset if self.split is not None and p < self.split)

    @property
    def top_line(self) -> list[int]:
        """The highest melody pitch of every onset that has one: where motifs live."""
        return [max(m) for m in (self.melody(o) for o in self.onsets) if m]

    @property
    def bass_line(self) -> list[int]:
        return [p for o in self.onsets for p in self.bass(o)]

    @property
    def scale(self) -> frozenset[int]:
        """The pitch classes of the call's key (all twelve if it has none)."""
        return scale_of(self.key)


def scale_of(key: tuple[int, str] | None) -> frozenset[int]:
    """The pitch classes of a (root, mode) key; all twelve for None."""
    if key is None:
        return frozenset(range(12))
    root, mode = key
    return frozenset((root + step) % 12 for step in MODES[mode])


def group_onsets(notes: Sequence[CallNote]) -> list[tuple[float, tuple[int, ...]]]:
    """(time, ascending distinct pitches) per onset: notes within CHORD_WINDOW_S of an onset's first join it."""
    out: list[tuple[float, list[int]]] = []
    for note in sorted(notes, key=lambda n: (n.onset_s, n.pitch)):
        if out and note.onset_s - out[-1][0] <= CHORD_WINDOW_S:
            if note.pitch not in out[-1][1]:
                out[-1][1].append(note.pitch)
        else:
            out.append((note.onset_s, [note.pitch]))
    return [(t, tuple(sorted(pitches))) for t, pitches in out]


def hands_split(onsets: Sequence[Sequence[int]]) -> int | None:
    """The lowest melody pitch of a two-handed call, or None for one hand.

    Two hands: the widest gap between the call's distinct pitches is at least HANDS_GAP, each side
    holds MIN_HAND_SHARE of the notes, and some onset strikes both sides together.
    """
    pitches = [p for o in onsets for p in o]
    distinct = sorted(set(pitches))
    if len(distinct) < 2:
        return None
    gap, split = max((b - a, b) for a, b in zip(distinct, distinct[1:]))
    if gap < HANDS_GAP:
        return None
    low = sum(1 for p in pitches if p < split)
    share = min(low, len(pitches) - low) / len(pitches)
    together = any(min(o) < split <= max(o) for o in onsets)
    return split if share >= MIN_HAND_SHARE and together else None


def describe_call(notes: Sequence[CallNote]) -> Call | None:
    """The call of `notes` (None for no notes)."""
    if not notes:
        return None
    grouped = group_onsets(notes)
    onsets = tuple(pitches for _, pitches in grouped)
    key = estimate_key((n.pitch, n.duration_s) for n in notes)
    return Call(onsets, tuple(t for t, _ in grouped), key, hands_split(onsets))
