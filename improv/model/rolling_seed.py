"""The rolling seed: a model state advanced one event at a time, and sampling from it.

Shared by `improv generate`, evaluation and the live engine. Every event the
player plays or improv answers is `observe`d once: the LSTM state moves one
step, the event joins the seed and the oldest leaves, and nothing is ever
re-run over the whole history except by `rebuild` (after a reset or a model
change).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from improv.model import sampling
from improv.music.encoding import N_PITCH, START_PITCH
from improv.music.events import Event
from improv.model.network import LoadedModel
from improv.model.style import StyleMemory, blend

DEFAULT_SEED_EVENTS = 64


@dataclass(frozen=True)
class Constraints:
    """Masks applied before sampling; None means unconstrained."""

    pitch_lo: int = 0
    pitch_hi: int = 127
    key: tuple[int, str] | None = None
    max_polyphony: int | None = None

    def pitch_mask(self) -> np.ndarray | None:
        if self.key is None and (self.pitch_lo, self.pitch_hi) == (0, 127):
            return None
        root, mode = self.key if self.key else (None, None)
        return sampling.pitch_mask(self.pitch_lo, self.pitch_hi, root, mode)


# Krumhansl-Kessler key profiles: how well each pitch class above the tonic fits a key.
_MAJOR_PROFILE = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
_MINOR_PROFILE = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
MIN_KEY_WEIGHT_S = 0.1  # a very short note still counts this much


def estimate_key(notes: Iterable[tuple[int, float]]) -> tuple[int, str] | None:
    """The major or minor key that best fits (pitch, duration in s) notes, as (root pitch class, mode).

    Krumhansl-Schmuckler: correlate the duration-weighted pitch-class histogram
    with each of the 24 rotated key profiles. None when there are no notes or
    all pitch classes weigh the same (no key to prefer).
    """
    histogram = np.zeros(12)
    for pitch, duration in notes:
        histogram[pitch % 12] += max(duration, MIN_KEY_WEIGHT_S)
    if not histogram.any() or np.all(histogram == histogram[0]):
        return None
    best: tuple[float, int, str] | None = None
    for mode, profile in (("major", _MAJOR_PROFILE), ("minor", _MINOR_PROFILE)):
        for root in range(12):
            score = float(np.corrcoef(histogram, np.roll(profile, root))[0, 1])
            if best is None or score > best[0]:
                best = (score, root, mode)
    assert best is not None
    return best[1], best[2]


@dataclass(frozen=True, slots=True)
class SeedSnapshot:
    """Everything `Improviser.restore` needs to sample again from the same point."""

    state: torch.Tensor
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
        self.model = model
        self.module = model.module
        self.bins = model.bins
        self.seed: deque[tuple[int, int, int, int]] = deque(maxlen=seed_events)
        self._start_velocity = self.bins.velocity_bin(80)
        self._chord: list[int] = []  # pitches at the current onset
        self._chord_mask = torch.zeros(N_PITCH, dtype=torch.bool)  # the same, for `sample_next`
        self._masks: dict[Constraints | None, torch.Tensor] = {}
        self._all_steps = torch.ones(self.bins.n_step, dtype=torch.bool)
        self._fused = hasattr(self.module, "sample_next")
        self.state = self._fresh_state()

    def _fresh_state(self) -> torch.Tensor:
        with torch.inference_mode():
            return self.module.feed(self.module.initial_state(), START_PITCH, 0, 0, self._start_velocity)

    def reset(self) -> None:
        """Forget everything: silence, as at start-up."""
        self.seed.clear()
        self._chord = []
        self._chord_mask.zero_()
        self.state = self._fresh_state()

    def snapshot(self) -> SeedSnapshot:
        """The current state and seed, to `restore` later (a re-roll resamples from here)."""
        return SeedSnapshot(self.state.clone(), tuple(self.seed), tuple(self._chord))

    def restore(self, snapshot: SeedSnapshot) -> None:
        """Go back to a `snapshot`: what was observed since is forgotten."""
        self.state = snapshot.state.clone()
        self.seed = deque(snapshot.seed, maxlen=self.seed.maxlen)
        self._chord = list(snapshot.chord)
        self._chord_mask.zero_()
        self._chord_mask[list(snapshot.chord)] = True

    def rebuild(self) -> None:
        """Recompute the state from the kept seed (after a reset of the state or a model change)."""
        seed = list(self.seed)
        self.reset()
        for tokens in seed:
            self.observe_tokens(tokens)

    def set_model(self, model: LoadedModel) -> None:
        self.model, self.module, self.bins = model, model.module, model.bins
        self._fused = hasattr(self.module, "sample_next")
        self._all_steps = torch.ones(self.bins.n_step, dtype=torch.bool)
        self.rebuild()

    def observe(self, event: Event) -> None:
        self.observe_tokens(self.bins.encode(event))

    def observe_tokens(self, tokens: tuple[int, int, int, int]) -> None:
        pitch, step, duration, velocity = tokens
        with torch.inference_mode():
            self.state = self.module.feed(self.state, pitch, step, duration, velocity)
        self.seed.append(tokens)
        self._note_chord(pitch, step)

    def _note_chord(self, pitch: int, step: int) -> None:
        """Keep the pitches struck at the current onset (a new step starts a new onset)."""
        if step != 0:
            self._chord = []
            self._chord_mask.zero_()
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

        With `memory` (a style memory's `seen` part of P(pitch, step bin), shape (128, n_step), and
        its unknown share `floor`), step and then pitch are drawn from (1 - follow) * model +
        follow * memory, the memory's unknown share filled by the model; temperature applies last.
        """
        module = self.module
        nll = 0.0
        ent = 0.0
        with torch.inference_mode():
            step_logits = module.step_logits(self.state).numpy()
            mask = pitch_mask if pitch_mask is not None else (constraints.pitch_mask() if constraints else None)
            step_mask = self._step_mask(constraints, mask)
            if memory is None:
                step, n, e = self._draw(step_logits, temperature, rng, top_p, step_mask)
            else:
                seen, floor = memory
                model_step = np.exp(sampling.log_softmax(step_logits))
                remembered = seen.sum(axis=0) + floor * model_step
                step, n, e = self._draw_probs(blend(model_step, remembered, follow), temperature, rng, top_p, step_mask)
            nll += n
            ent += e
            if step == 0 and self._chord:  # a chord tone: not a pitch already struck at this onset
                mask = np.ones(N_PITCH, dtype=bool) if mask is None else mask.copy()
                mask[self._chord] = False
            pitch_logits = module.pitch_logits(self.state, step).numpy()
            if memory is None:
                pitch, n, e = self._draw(pitch_logits, temperature, rng, top_p, mask)
            else:
                model_pitch = np.exp(sampling.log_softmax(pitch_logits))
                remembered = seen[:, step] + floor * model_step[step] * model_pitch  # P(pitch, this step)
                mixed = blend(model_pitch, remembered / remembered.sum(), follow)
                pitch, n, e = self._draw_probs(mixed, temperature, rng, top_p, mask)
            nll += n
            ent += e
            duration, n, e = self._draw(module.duration_logits(self.state, step, pitch).numpy(), temperature, rng, top_p)
            nll += n
            ent += e
            velocity, n, e = self._draw(
                module.velocity_logits(self.state, step, pitch, duration).numpy(), temperature, rng, top_p
            )
            nll += n
            ent += e
        tokens = (pitch, step, duration, velocity)
        return Sampled(self.bins.decode(*tokens), tokens, nll, ent)

    def sample(
        self,
        temperature: float,
        rng: np.random.Generator,
        constraints: Constraints | None = None,
        top_p: float | None = None,
        style: StyleMemory | None = None,
        follow: float = 0.0,
    ) -> Sampled:
        """Sample the next event and make it part of the seed.

        Model files that have `sample_next` do it in one call (the live path's hot spot); the
        draws are the same as `propose` + `observe_tokens`, which older files use. With a
        `style` memory and `follow` > 0, pitch and step come from the blend of the model and
        the memory wherever the memory has seen the last event played.
        """
        if style is not None and follow > 0.0:
            context = style.context(self.seed)
            if context and style.matched_order(context) >= 1:
                sampled = self.propose(temperature, rng, constraints, top_p, memory=style.seen(context), follow=follow)
                self.observe_tokens(sampled.tokens)
                return sampled
        if not self._fused:
            sampled = self.propose(temperature, rng, constraints, top_p)
            self.observe_tokens(sampled.tokens)
            return sampled
        temperature = sampling.positive_temperature(temperature)
        nucleus = 1.0 if top_p is None else sampling.check_top_p(top_p)
        uniforms = torch.from_numpy(rng.random(4))
        pitch_allowed = self._pitch_allowed(constraints)
        step_mask = self._step_mask(constraints, pitch_allowed.numpy())
        step_allowed = self._all_steps if step_mask is None else torch.from_numpy(step_mask)
        with torch.inference_mode():
            self.state, tokens, stats = self.module.sample_next(
                self.state, temperature, nucleus, uniforms, pitch_allowed, step_allowed, self._chord_mask,
            )
        pitch, step, duration, velocity = tokens
        self.seed.append((pitch, step, duration, velocity))
        self._note_chord(pitch, step)
        return Sampled(self.bins.decode(pitch, step, duration, velocity), (pitch, step, duration, velocity),
                       stats[0], stats[1])

    @classmethod
    def _draw_probs(
        cls, probs: np.ndarray, temperature: float, rng: np.random.Generator, top_p: float | None, mask: np.ndarray | None
    ) -> tuple[int, float, float]:
        """`_draw` from a distribution instead of logits (a blend has no logits of its own)."""
        with np.errstate(divide="ignore"):
            return cls._draw(np.log(probs), temperature, rng, top_p, mask)

    def warm_up(self, rounds: int = 3) -> None:
        """Run the sampling path a few times and forget it: the first calls of a TorchScript
        method are several times slower (the executor profiles and optimises them)."""
        snapshot = self.snapshot()
        rng = np.random.default_rng(0)
        for _ in range(rounds):
            self.propose(1.0, rng, Constraints(max_polyphony=6))  # the per-head methods `follow` uses
            self.sample(1.0, rng, Constraints(max_polyphony=6))
        self.restore(snapshot)

    def _step_mask(self, constraints: Constraints | None, allowed: np.ndarray | None) -> np.ndarray | None:
        """Step bins allowed (None: all). Step 0 adds a chord tone: barred once the chord holds
        `max_polyphony` pitches, or when no allowed pitch is left that it does not hold (the pitch
        mask would then leave nothing, and the sampler's fallback for an empty mask would ignore
        it, and the range and key with it)."""
        mask = None
        if constraints is not None and constraints.max_polyphony is not None:
            mask = sampling.polyphony_mask(self._chord, constraints.max_polyphony, self.bins.n_step)
        can_grow = len(self._chord) < N_PITCH if allowed is None else bool(np.any(allowed & ~self._chord_mask.numpy()))
        if not can_grow:
            mask = np.ones(self.bins.n_step, dtype=bool) if mask is None else mask
            mask[0] = False
        return mask

    def _pitch_allowed(self, constraints: Constraints | None) -> torch.Tensor:
        """The pitch mask of `constraints` as a tensor, built once per constraints value."""
        mask = self._masks.get(constraints)
        if mask is None:
            if len(self._masks) >= 256:  # answers follow the player's register: many ranges over a session
                self._masks.clear()
            array = constraints.pitch_mask() if constraints is not None else None
            mask = torch.ones(N_PITCH, dtype=torch.bool) if array is None else torch.from_numpy(array.copy())
            self._masks[constraints] = mask
        return mask

    @staticmethod
    def _draw(
        logits: np.ndarray, temperature: float, rng: np.random.Generator, top_p: float | None, mask: np.ndarray | None = None
    ) -> tuple[int, float, float]:
        probs = sampling.probabilities(logits, temperature, top_p, mask)
        token = sampling.draw(probs, rng)
        at_one = sampling.log_softmax(logits)
        p_one = np.exp(at_one)
        return token, float(-at_one[token]), float(-np.dot(p_one, np.where(p_one > 0, at_one, 0.0)))
