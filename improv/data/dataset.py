"""Training sequences: works as compact arrays, random augmented windows, batches.

Offline only: never imported by the live path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from improv.music.encoding import N_PITCH, START_PITCH, Bins
from improv.music.events import Note, notes_to_events

TRANSPOSE_SEMITONES = 6
TEMPO_SCALE = (0.8, 1.25)


@dataclass(frozen=True)
class EventArrays:
    """One work as event arrays (seconds for times), plus whether velocity means anything."""

    name: str
    pitch: np.ndarray  # int64
    step: np.ndarray  # float64 seconds
    duration: np.ndarray  # float64 seconds
    velocity: np.ndarray  # int64
    has_velocity: bool

    def __len__(self) -> int:
        return len(self.pitch)


def to_sequence(name: str, notes: Sequence[Note], has_velocity: bool = True) -> EventArrays:
    events = notes_to_events(notes, origin=notes[0].start if notes else 0.0)
    return EventArrays(
        name,
        np.array([e.pitch for e in events], dtype=np.int64),
        np.array([e.step for e in events], dtype=np.float64),
        np.array([e.duration for e in events], dtype=np.float64),
        np.array([e.velocity for e in events], dtype=np.int64),
        has_velocity,
    )


def encode_sequence(seq: EventArrays, bins: Bins, transpose: int = 0, tempo: float = 1.0) -> np.ndarray:
    """(T+1, 5) int64 tokens: a start token, then the events; column 4 masks velocity."""
    steps, durations, velocities = bins.encode_arrays(seq.step * tempo, seq.duration * tempo, seq.velocity)
    tokens = np.empty((len(seq) + 1, 5), dtype=np.int64)
    tokens[0] = (START_PITCH, 0, 0, bins.velocity_bin(80), 0)
    tokens[1:, 0] = np.clip(seq.pitch + transpose, 0, N_PITCH - 1)
    tokens[1:, 1] = steps
    tokens[1:, 2] = durations
    tokens[1:, 3] = velocities
    tokens[1:, 4] = int(seq.has_velocity)
    return tokens


def transpose_range(seq: EventArrays, limit: int = TRANSPOSE_SEMITONES) -> tuple[int, int]:
    """The shifts within +-limit that keep every pitch inside 0-127."""
    lo = max(-limit, -int(seq.pitch.min())) if len(seq) else 0
    hi = min(limit, N_PITCH - 1 - int(seq.pitch.max())) if len(seq) else 0
    return lo, hi


class WindowSampler:
    """Random windows of `length` events, weighted by work length, augmented on the fly.

    Every window starts with the start token, as the live engine does after a
    reset, so the model learns to begin from silence and from mid-phrase alike.
    """

    def __init__(
        self, sequences: Sequence[EventArrays], bins: Bins, length: int, seed: int, augment: bool = True,
        weights: Sequence[float] | None = None,
    ) -> None:
        """`weights`: one factor per sequence on top of its length (a collection's share of the windows)."""
        factors = list(weights) if weights is not None else [1.0] * len(sequences)
        if len(factors) != len(sequences):
            raise ValueError(f"{len(factors)} weights for {len(sequences)} sequences")
        kept = [(s, f) for s, f in zip(sequences, factors) if len(s) >= 2]
        self.sequences = [s for s, _ in kept]
        self.bins = bins
        self.length = length
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        sizes = np.array([len(s) * f for s, f in kept], dtype=np.float64)
        self.weights = sizes / sizes.sum()

    def window(self) -> np.ndarray:
        seq = self.sequences[self.rng.choice(len(self.sequences), p=self.weights)]
        transpose, tempo = 0, 1.0
        if self.augment:
            lo, hi = transpose_range(seq)
            transpose = int(self.rng.integers(lo, hi + 1))
            tempo = float(np.exp(self.rng.uniform(np.log(TEMPO_SCALE[0]), np.log(TEMPO_SCALE[1]))))
        start = int(self.rng.integers(0, max(len(seq) - self.length, 0) + 1))
        piece = EventArrays(
            seq.name,
            seq.pitch[start : start + self.length],
            seq.step[start : start + self.length],
            seq.duration[start : start + self.length],
            seq.velocity[start : start + self.length],
            seq.has_velocity,
        )
        tokens = encode_sequence(piece, self.bins, transpose, tempo)
        if len(tokens) < self.length + 1:  # short work: pad; padding is masked out of the loss
            pad = np.zeros((self.length + 1 - len(tokens), 5), dtype=np.int64)
            pad[:, 0] = -1
            tokens = np.concatenate([tokens, pad])
        return tokens

    def batch(self, size: int) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.window() for _ in range(size)]))


def pad_stack(arrays: Sequence[np.ndarray]) -> torch.Tensor:
    """(T+1, 5) token arrays of different lengths as one (B, longest, 5) batch, padded with pitch -1 (masked)."""
    longest = max(len(a) for a in arrays)
    out = np.zeros((len(arrays), longest, 5), dtype=np.int64)
    out[:, :, 0] = -1
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return torch.from_numpy(out)


def split_batch(tokens: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
    """(B, T+1, 5) -> inputs, targets (pitch, step, duration, velocity), valid mask, velocity mask."""
    inputs = tokens[:, :-1]
    targets = tokens[:, 1:]
    valid = targets[..., 0] >= 0
    safe_in = inputs.clamp(min=0)
    safe_out = targets.clamp(min=0)
    ins = (safe_in[..., 0], safe_in[..., 1], safe_in[..., 2], safe_in[..., 3])
    outs = (safe_out[..., 0], safe_out[..., 1], safe_out[..., 2], safe_out[..., 3])
    velocity_valid = valid & (targets[..., 4] > 0)
    return ins, outs, valid, velocity_valid


def join_tunes(tunes: Sequence[tuple[str, Sequence[Note]]], max_events: int = 1024, gap_s: float = 1.0) -> list[EventArrays]:
    """Short tunes (names `file#number`) joined in order into medleys of up to `max_events`, per file.

    A 50-note tune alone fills less than half a training window (the rest is padding); joined,
    each tune follows the last one's end after `gap_s` of silence, as a player goes on to the next.
    """
    out: list[EventArrays] = []
    group: list[Note] = []
    group_name = ""

    def flush() -> None:
        if group:
            out.append(to_sequence(group_name, group, has_velocity=False))

    for name, notes in tunes:
        if not notes:
            continue
        source = name.split("#")[0]
        if group and (source != group_name.split("#")[0] or len(group) + len(notes) > max_events):
            flush()
            group = []
        if not group:
            group_name = name
            offset = -notes[0].start
        else:
            offset = max(n.end for n in group) + gap_s - notes[0].start
        group.extend(Note(n.pitch, n.velocity, n.start + offset, n.duration) for n in notes)
    flush()
    return out


MIDI_SUFFIXES = (".mid", ".midi")
DRUM_CHANNEL = 9  # "channel 10" in musicians' numbering


def find_midi_files(paths: Sequence[str | Path]) -> list[Path]:
    """Files given directly, and `.mid`/`.midi` files found recursively in folders, sorted."""
    found: list[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            found.extend(p for p in entry.rglob("*") if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES)
        else:
            found.append(entry)
    return sorted(set(found))


def load_midi_files(
    paths: Sequence[str | Path], include_drums: bool = False, warn: Callable[[str], None] | None = None,
    player_only: bool = False,
) -> tuple[list[tuple[str, list[Note]]], int]:
    """(name, notes) per readable file with notes, and how many files were skipped.

    An unreadable file costs a one-line warning, never the whole run. With `player_only`, a
    saved session (a file with a track named `player`) gives only the player's notes: a model
    fine-tuned on a player should not learn its own answers back.
    """
    from improv.errors import MidiFileError
    from improv.midi.files import read_midi, read_midi_tracks

    works: list[tuple[str, list[Note]]] = []
    skipped = 0
    for path in find_midi_files(paths):
        try:
            tracks = read_midi_tracks(path) if player_only else {}
            notes = tracks["player"] if "player" in tracks else read_midi(path)
        except MidiFileError as error:
            skipped += 1
            if warn:
                warn(f"skipped: {error}")
            continue
        if not include_drums:
            notes = [n for n in notes if n.channel != DRUM_CHANNEL]
        if notes:
            works.append((str(path), notes))
    return works, skipped


def is_held_out(name: str) -> bool:
    """The stable 10% validation rule used for every collection: sha1 of the work name."""
    import hashlib

    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % 10 == 0


def split_works(works: Sequence[tuple[str, list[Note]]]) -> tuple[list[EventArrays], list[EventArrays]]:
    """Train/valid by work; a collection too small to hold a work out validates on the last tenth of each work."""
    train, valid = [], []
    for name, notes in works:
        (valid if is_held_out(name) else train).append(to_sequence(name, notes))
    if train and valid:
        return train, valid
    train, valid = [], []
    for name, notes in works:
        cut = max(1, len(notes) * 9 // 10)
        train.append(to_sequence(name, notes[:cut]))
        if notes[cut:]:
            valid.append(to_sequence(name + "#tail", notes[cut:]))
    return train, valid
