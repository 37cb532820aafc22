"""What an answer may play: pitch range, key and chord size, as masks over a head's tokens.

Masks are boolean arrays, True = allowed, handed to `sampling` with the logits. The pitch mask
comes from the range and key (`improv.music.keys`); the step mask keeps chords within the
polyphony and stops a chord growing when no allowed pitch is left for it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from improv.music.keys import N_PITCHES, check_int, pitch_mask

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Constraints:
    """Masks applied before sampling; None means unconstrained."""

    pitch_lo: int = 0
    pitch_hi: int = 127
    key: tuple[int, str] | None = None
    max_polyphony: int | None = None

    def pitch_mask(self) -> BoolArray | None:
        if self.key is None and (self.pitch_lo, self.pitch_hi) == (0, 127):
            return None
        root, mode = self.key if self.key else (None, None)
        return pitch_mask(self.pitch_lo, self.pitch_hi, root, mode)

    def planned_steps(self, n_step: int) -> BoolArray | None:
        """Step bins a caller allows the next event (None: all); a hook for answer planners."""
        return None


def polyphony_mask(chord_pitches: Collection[int], max_polyphony: int, n_step_bins: int, chord_bin: int = 0) -> BoolArray:
    """Mask over the step head's bins that stops chords growing past `max_polyphony`.

    `chord_pitches` are the pitches struck at the current onset (the last
    event with step > 0 and the step-0 events after it). Step bin `chord_bin`
    (step 0) adds one more note to that chord, so it is forbidden once the
    chord already holds `max_polyphony` distinct pitches; every other bin
    starts a new onset and stays allowed. Notes still ringing from earlier
    onsets are the scheduler's business: the step head cannot know when they
    end. With a single step bin the mask is all False and `sample` falls back
    to the unmasked logits.
    """
    n_step_bins = check_int(n_step_bins, "number of step bins", 1, 1 << 30)
    max_polyphony = check_int(max_polyphony, "maximum polyphony", 1, N_PITCHES)
    chord_bin = check_int(chord_bin, "chord bin", 0, n_step_bins - 1)
    mask = np.ones(n_step_bins, dtype=np.bool_)
    if len(set(chord_pitches)) >= max_polyphony:
        mask[chord_bin] = False
    return mask


def step_mask(
    constraints: Constraints | None, chord: Collection[int], chord_mask: BoolArray, allowed: BoolArray | None, n_step: int
) -> BoolArray | None:
    """Step bins allowed (None: all). Step 0 adds a chord tone: barred once the chord holds
    `max_polyphony` pitches, or when no allowed pitch is left that it does not hold (the pitch
    mask would then leave nothing, and the sampler's fallback for an empty mask would ignore
    it, and the range and key with it)."""
    mask = None  # (this runs once per live event: no arrays where None says the same)
    polyphony = constraints.max_polyphony if constraints is not None else None
    if polyphony is not None and len(set(chord)) >= polyphony:
        mask = polyphony_mask(chord, polyphony, n_step)
    if allowed is None:
        can_grow = len(chord) < N_PITCHES
    else:
        can_grow = len(chord) < np.count_nonzero(allowed) or bool(np.any(allowed & ~chord_mask))
    if not can_grow:
        mask = np.ones(n_step, dtype=bool) if mask is None else mask
        mask[0] = False
    planned = constraints.planned_steps(n_step) if constraints is not None else None
    if planned is not None:  # a planner's steps, where they leave some bin the rest allows
        narrowed = planned if mask is None else planned & mask
        mask = narrowed if narrowed.any() else mask
    return mask


def chord_tone_mask(allowed: BoolArray | None, chord: Collection[int]) -> BoolArray | None:
    """The pitch mask for a chord tone (step 0): not a pitch already struck at this onset."""
    if not chord:
        return allowed
    mask = np.ones(N_PITCHES, dtype=bool) if allowed is None else allowed.copy()
    mask[list(chord)] = False
    return mask
