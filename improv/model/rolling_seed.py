"""The rolling seed: a model state advanced one event at a time, and sampling from it.

Shared by `improv generate`, evaluation and the live engine. Every event the
player plays or improv answers is `observe`d once: the LSTM state moves one
step, the event joins the seed and the oldest leaves, and nothing is ever
re-run over the whole history except by `rebuild` (after a reset or a model
change). One event is drawn head by head (step, pitch given the step, duration,
velocity) by `propose`, each head through `sampling.choose`: the only sampler.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from improv.model import sampling
from improv.model.constraints import Constraints, chord_tone_mask, step_mask
from improv.model.model_file import LoadedModel
from improv.model.style import StyleMemory, blend
from improv.music.encoding import N_PITCH, START_PITCH
from improv.music.events import Event
from improv.music.keys import estimate_key

__all__ = ["DEFAULT_SEED_EVENTS", "Constraints", "Improviser", "Sampled", "SeedSnapshot", "estimate_key"]

DEFAULT_SEED_EVENTS = 64


@dataclass(frozen=True, slots=True)
class SeedSnapshot:
    """Everything `Improviser.restore` needs to sample again from the same point."""

    state: np.ndarray
    seed: tuple[tuple[int, int, int, int], ...]
    chord: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Sampled:
    """One sampled event with its tokens and how surprising it was (nats, at T = 1)."""

    event: Event
    tokens: tuple[int, int, int, int]  # pitch, step bin, duration bin, velocity bin
    nll: float
    entropy: float


class Improviser:
    """A model with a rolling seed of the last `seed_events` events."""

    def __init__(self, model: LoadedModel, seed_events: int = DEFAULT_SEED_EVENTS) -> None:
        self.seed: deque[tuple[int, int, int, int]] = deque(maxlen=seed_events)
        self._chord: list[int] = []  # pitches at the current onset
        self._chord_mask = np.zeros(N_PITCH, dtype=bool)  # the same, as a mask
        self._masks: dict[Constraints | None, np.ndarray | None] = {}
        self._use(model)
        self.state = self._fresh_state()

    def _use(self, model: LoadedModel) -> None:
        self.model, self.step, self.bins = model, model.step, model.bins
        self._start_velocity = self.bins.velocity_bin(80)

    def _fresh_state(self) -> np.ndarray:
        return self.step.feed(self.step.initial_state(), START_PITCH, 0, 0, self._start_velocity)

    def reset(self) -> None:
        """Forget everything: silence, as at start-up."""
        self.seed.clear()
        self._chord = []
        self._chord_mask[:] = False
        self.state = self._fresh_state()

    def snapshot(self) -> SeedSnapshot:
        """The current state and seed, to `restore` later (a re-roll resamples from here)."""
        return SeedSnapshot(self.state.copy(), tuple(self.seed), tuple(self._chord))

    def restore(self, snapshot: SeedSnapshot) -> None:
        """Go back to a `snapshot`: what was observed since is forgotten."""
        self.state = snapshot.state.copy()
        self.seed = deque(snapshot.seed, maxlen=self.seed.maxlen)
        self._chord = list(snapshot.chord)
        self._chord_mask[:] = False
        self._chord_mask[list(snapshot.chord)] = True

    def rebuild(self) -> None:
        """Recompute the state from the kept seed (after a reset of the state or a model change)."""
        seed = list(self.seed)
        self.reset()
        for tokens in seed:
            self.observe_tokens(tokens)

    def set_model(self, model: LoadedModel) -> None:
        self._use(model)
        self.rebuild()

    def observe(self, event: Event) -> None:
        self.observe_tokens(self.bins.encode(event))

    def observe_tokens(self, tokens: tuple[int, int, int, int]) -> None:
        pitch, step, duration, velocity = tokens
        self.state = self.step.feed(self.state, pitch, step, duration, velocity)
        self.seed.append(tokens)
        self._note_chord(pitch, step)

    def _note_chord(self, pitch: int, step: int) -> None:
        """Keep the pitches struck at the current onset (a new step starts a new onset)."""
        if step != 0:
            self._chord = []
            self._chord_mask[:] = False
        self._chord.append(pitch)
        self._chord_mask[pitch] = True

    def propose(
        self,
        temperature: float,
        rng: np.random.Generator,
        constraints: Constraints | None = None,
        top_p: float | None = None,
        pitch_mask: np.ndarray | None = None,
        memory: tuple[np.ndarray, float] | None = None,
        follow: float = 0.0,
    ) -> Sampled:
        """Sample the next event from the current state without observing it.

        One `rng.random()` per head, in chain order, so a seeded generator replays exactly.
        With `memory` (a style memory's `seen` part of P(pitch, step bin), shape (128, n_step), and
        its unknown share `floor`), step and then pitch are drawn from (1 - follow) * model +
        follow * memory, the memory's unknown share filled by the model; temperature applies last.
        """
        model, state = self.step, self.state
        allowed = pitch_mask if pitch_mask is not None else self._pitch_mask(constraints)
        steps_allowed = step_mask(constraints, self._chord, self._chord_mask, allowed, self.bins.n_step)
        step_logits = model.step_logits(state)
        if memory is None:
            step, nll, entropy = sampling.choose(step_logits, temperature, rng, top_p, steps_allowed)
        else:
            seen, floor = memory
            model_step = np.exp(sampling.log_softmax(step_logits))
            remembered = seen.sum(axis=0) + floor * model_step
            step, nll, entropy = _choose_from(blend(model_step, remembered, follow), temperature, rng, top_p, steps_allowed)
        if step == 0:  # a chord tone: not a pitch already struck at this onset
            allowed = chord_tone_mask(allowed, self._chord)
        pitch_logits = model.pitch_logits(state, step)
        if memory is None:
            pitch, n, e = sampling.choose(pitch_logits, temperature, rng, top_p, allowed)
        else:
            model_pitch = np.exp(sampling.log_softmax(pitch_logits))
            remembered = seen[:, step] + floor * model_step[step] * model_pitch  # P(pitch, this step)
            mixed = blend(model_pitch, remembered / remembered.sum(), follow)
            pitch, n, e = _choose_from(mixed, temperature, rng, top_p, allowed)
        nll += n
        entropy += e
        duration, n, e = sampling.choose(model.duration_logits(state, step, pitch), temperature, rng, top_p)
        nll += n
        entropy += e
        velocity, n, e = sampling.choose(model.velocity_logits(state, step, pitch, duration), temperature, rng, top_p)
        nll += n
        entropy += e
        tokens = (pitch, step, duration, velocity)
        return Sampled(self.bins.decode(*tokens), tokens, nll, entropy)

    def sample(
        self,
        temperature: float,
        rng: np.random.Generator,
        constraints: Constraints | None = None,
        top_p: float | None = None,
        style: StyleMemory | None = None,
        follow: float = 0.0,
    ) -> Sampled:
        """Sample the next event and make it part of the seed: the live path's per-event work.

        With a `style` memory and `follow` > 0, pitch and step come from the blend of the model
        and the memory wherever the memory has seen the last event played.
        """
        memory = None
        if style is not None and follow > 0.0:
            context = style.context(self.seed)
            if context and style.matched_order(context) >= 1:
                memory = style.seen(context)
        sampled = self.propose(temperature, rng, constraints, top_p, memory=memory, follow=follow)
        self.observe_tokens(sampled.tokens)
        return sampled

    def warm_up(self, rounds: int = 3) -> None:
        """Run the sampling path a few times and forget it: the first calls fill caches and
        touch every code path, so the first answer is not the slowest."""
        snapshot = self.snapshot()
        rng = np.random.default_rng(0)
        for _ in range(rounds):
            self.sample(1.0, rng, Constraints(max_polyphony=6))
        self.restore(snapshot)

    def _pitch_mask(self, constraints: Constraints | None) -> np.ndarray | None:
        """The pitch mask of `constraints` (None: all), built once per constraints value."""
        if constraints is None:
            return None
        if constraints not in self._masks:
            if len(self._masks) >= 256:  # answers follow the player's register: many ranges over a session
                self._masks.clear()
            self._masks[constraints] = constraints.pitch_mask()
        return self._masks[constraints]


def _choose_from(
    probs: np.ndarray, temperature: float, rng: np.random.Generator, top_p: float | None, mask: np.ndarray | None
) -> tuple[int, float, float]:
    """`sampling.choose` from a distribution instead of logits (a blend has no logits of its own)."""
    with np.errstate(divide="ignore"):
        return sampling.choose(np.log(probs), temperature, rng, top_p, mask)
