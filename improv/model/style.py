"""Session style memory: what this player has been playing, to blend into the answers.

A variable-order Markov model (interpolated Kneser-Ney, orders up to 6, so
it backs off to shorter contexts it has seen) over the player's own events,
each one token of (pitch, step bin): melody and rhythm together, so a motif
comes back with its rhythm. It learns as each note arrives (a dict update or
two, a few microseconds) and remembers the player's last `MEMORY_EVENTS` to
2 x `MEMORY_EVENTS` events: a younger model starts learning once the memory is
full and takes over when it has heard `MEMORY_EVENTS` itself, so an evening of
playing holds its memory flat (it grew ~2 KB per note, ~1 MB a minute of duet).

`blend` is the "follow me" mix: (1 - w) * model + w * memory, in
probabilities, before the temperature is applied. The memory's smoothing
does not back off to chance but to the model: the share the memory's counts
do not cover goes to the model's prediction. So with few notes heard, even
w = 1 mostly plays the model; once the player has repeated themselves, it
plays them back. Where the memory has never seen the current context it has
nothing to say, and the model plays alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from improv.music.encoding import N_PITCH
from improv.model.kneser_ney import MarkovModel

STYLE_ORDER = 6
MEMORY_EVENTS = 4096  # about ten minutes of busy playing


class StyleMemory:
    """The player's (pitch, step bin) events as a Markov model that grows during the session."""

    def __init__(self, n_step: int, order: int = STYLE_ORDER, capacity: int = MEMORY_EVENTS) -> None:
        self.n_step = n_step
        self.order = order
        self.capacity = capacity
        self.model = MarkovModel(N_PITCH * n_step, order)
        self._younger: MarkovModel | None = None  # learning since the memory filled; takes over when full

    def token(self, pitch: int, step: int) -> int:
        return pitch * self.n_step + step

    def learn(self, pitch: int, step: int) -> None:
        """One event the player played (after the ones before it)."""
        token = self.token(pitch, step)
        self.model.observe(token)
        if self._younger is None:
            if self.model.tokens_seen >= self.capacity:
                self._younger = MarkovModel(N_PITCH * self.n_step, self.order)
            return
        self._younger.observe(token)
        if self._younger.tokens_seen >= self.capacity:
            self.model, self._younger = self._younger, MarkovModel(N_PITCH * self.n_step, self.order)

    def new_phrase(self) -> None:
        """The next event starts a new sequence (after a reset): no context across it."""
        self.model.reset_history()
        if self._younger is not None:
            self._younger.reset_history()

    @property
    def events(self) -> int:
        return self.model.tokens_seen

    def context(self, recent: Sequence[tuple[int, ...]]) -> list[int]:
        """Tokens of the last events played by anyone, as (pitch, step bin, ...) tuples."""
        return [self.token(e[0], e[1]) for e in list(recent)[-self.order:]]

    def matched_order(self, context: Sequence[int]) -> int:
        """How many of the last events the memory has seen in this order (0: none; -1: empty memory)."""
        return self.model.matched_order(context)

    def joint(self, context: Sequence[int]) -> np.ndarray:
        """P(next pitch, next step bin | context) as a (128, n_step) array."""
        return self.model.distribution(context).reshape(N_PITCH, self.n_step)

    def seen(self, context: Sequence[int]) -> tuple[np.ndarray, float]:
        """The part of `joint` the player's counts give, (128, n_step), and the mass left over
        (`floor`): what the memory does not know, which `follow` leaves to the trained model."""
        seen, floor = self.model.seen_and_floor(context)
        return seen.reshape(N_PITCH, self.n_step), floor


def blend(model_probs: np.ndarray, memory_probs: np.ndarray, follow: float) -> np.ndarray:
    """(1 - follow) * model + follow * memory, both distributions over the same tokens."""
    follow = check_follow(follow)
    mixed = (1.0 - follow) * model_probs + follow * memory_probs
    return mixed / mixed.sum()


def check_follow(value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"follow must be between 0 and 1, got {value}")
    return value
