"""The answer planner: between the listener and the sampler, it decides an answer's shape from the call.

When an answer begins (in the gap's last milliseconds, with its early opening) the planner describes
the call once: key, register, pulse, texture, length, motifs. Then, for every note, it turns the call
and the answer so far into constraints for the sampler (the pitches and step bins the next note may
take, through `rules`), and the model fills the shape in. Without these an answer drifted: a median
9.5 semitones from the call, a quarter of its pace, a first note 19 semitones from its last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

import numpy as np

from improv.live.call import Call, scale_of
from improv.live.rules import (
    answer_length,
    bass_rule,
    below_rule,
    first_note_rule,
    key_rule,
    motif_due,
    motif_rule,
    onset_size,
    quote_rule,
    repeat_rule,
    pace_rule,
    register_rule,
    time_scale,
)
from improv.model.constraints import Constraints
from improv.music.keys import format_key

QUOTE_FREE_T = 0.5  # below this temperature the knob says "repeat": answers may quote the call as played
FIGURE_NOTES = 4  # the length of a figure `repeat_rule` counts
REFERENCE_STEP_S = 0.25  # the model's typical step (as timing.REFERENCE_STEP_S): scaled onto the call's pulse


@dataclass(frozen=True)
class PlanSettings:
    """The planner's margins (flags `--plan-*`, config keys `plan_*`)."""

    register: int = 4  # semitones the answer's median may drift from the call's before it is steered back
    leap: int = 2  # semitones from the call's last notes to the answer's first (or a tone of its last chord)
    span: int = 12  # semitones the answer may be wider than the call
    pace: float = 2.0  # an answer's steps within this factor of the call's pulse, either way
    chord: int = 1  # notes an answer's chord may have more than the call's largest
    length: float = 4.0  # answer notes per call note (at least half, at most --reply-notes)
    motif: float = 1.0  # share of the answer's melody notes that continue the call's interval pairs
    key: float = 1.0  # share of answer notes in the call's scale
    quote: int = 4  # notes of the call an answer's melody may repeat in a row at the same pitch (0: any number)
    repeat: int = 2  # times an answer may play a figure of its own (4 melody notes) at the same pitch (0: any number)
    accent: float = 0.2  # share of the call's loudness an answer note may be louder or softer than it

    def __post_init__(self) -> None:
        for name, lo, hi in (("register", 0, 24), ("leap", 0, 12), ("span", 0, 48), ("chord", 0, 8), ("quote", 0, 64),
                              ("repeat", 0, 16)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"plan-{name} must be a whole number {lo}-{hi}, got {value!r}")
        for name, lo, hi in (("pace", 1.0, 8.0), ("length", 0.5, 4.0), ("motif", 0.0, 1.0), ("key", 0.0, 1.0),
                             ("accent", 0.0, 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                raise ValueError(f"plan-{name} must be a number {lo:g}-{hi:g}, got {value!r}")


@dataclass(frozen=True)
class PlannedConstraints(Constraints):
    """`Constraints` with the planner's pitches and step bins for the next note (None: no limit)."""

    pitches: frozenset[int] | None = None
    steps: frozenset[int] | None = None

    def pitch_mask(self) -> np.ndarray | None:
        mask = super().pitch_mask()
        if self.pitches is None:
            return mask
        planned = np.zeros(128, dtype=bool)
        planned[list(self.pitches)] = True
        if mask is not None and (planned & mask).any():
            planned &= mask
        return planned

    def planned_steps(self, n_step: int) -> np.ndarray | None:
        if self.steps is None:
            return None
        mask = np.zeros(n_step, dtype=bool)
        mask[[s for s in self.steps if s < n_step]] = True
        return mask


def narrow(allowed: frozenset[int], rules: Sequence[frozenset[int] | None]) -> frozenset[int]:
    """`allowed` narrowed by each rule in turn; a rule that would leave nothing is skipped."""
    for rule in rules:
        if rule is not None and allowed & rule:
            allowed = allowed & rule
    return allowed


class Plan:
    """One answer's shape, decided from its call, and the answer so far (onsets of pitches, in order sampled)."""

    def __init__(self, call: Call, settings: PlanSettings, reply_notes: int, step_s: Sequence[float],
                 fallback_scale: float, key: tuple[int, str] | None = None) -> None:
        self.call = call
        self.settings = settings
        self.notes = self._whole_onsets(answer_length(call.notes, reply_notes, settings.length))
        self.time_scale = time_scale(call.ioi_s, REFERENCE_STEP_S, fallback_scale)
        self.pulse_s = call.ioi_s
        self.key = key or call.key
        self.scale = scale_of(self.key)
        self.step_s = tuple(step_s)
        self.top_line = call.top_line
        self.bass_line = call.bass_line
        melodies = [call.melody(o) for o in call.onsets]
        self.chord_width = max((max(m) - min(m) for m in melodies if m), default=0)
        self.onsets: list[list[int]] = []
        self.steps: list[float] = []  # the answer's steps between onsets so far (model seconds)
        self.out_of_key = 0

    def _whole_onsets(self, notes: int) -> int:
        """`notes` cut to the last whole onset (an answer does not end on a chord's first note)."""
        total = index = 0
        while total + (size := len(self._roles(index))) <= notes:
            total, index = total + size, index + 1
        return max(total, 1)

    def restart(self) -> None:
        """The same plan for another answer (a re-roll)."""
        self.onsets = []
        self.steps = []
        self.out_of_key = 0

    # -- the answer so far ------------------------------------------------------------

    def played(self, pitch: int, step_bin: int) -> None:
        """A note was sampled (step bin 0: it joins the onset before it)."""
        if step_bin == 0 and self.onsets:
            self.onsets[-1].append(pitch)
        else:
            if self.onsets:  # the first onset's step is the gap, not the answer's pace
                self.steps.append(self.step_s[step_bin])
            self.onsets.append([pitch])
        if pitch % 12 not in self.scale:
            self.out_of_key += 1

    def _roles(self, index: int) -> list[str]:
        """What each note of answer onset `index` is: the melody's "top" (sampled first), "inner" notes under
        it, a "bass" note (two hands), as in the call's onsets taken in turn."""
        call = self.call
        onset = call.onsets[index % len(call.onsets)]
        size = onset_size(call, index, self.settings.chord, None)
        if call.split is None:
            roles = ["top"] + ["inner"] * (size - 1)
        else:
            melody, bass = len(call.melody(onset)), len(call.bass(onset))
            roles = (["top"] + ["inner"] * (melody - 1) if melody else []) + ["bass"] * bass
        return roles[:size]

    def next_note(self, max_polyphony: int | None) -> tuple[str, bool, int]:
        """(role, chord tone?, onset index) of the next note to sample."""
        if self.onsets:
            index = len(self.onsets) - 1
            roles = self._roles(index)
            held = len(self.onsets[-1])
            if held < len(roles) and (max_polyphony is None or held < max_polyphony):
                return roles[held], True, index
        index = len(self.onsets)
        return self._roles(index)[0], False, index

    # -- the next note's limits ----------------------------------------------------------

    def constraints(self, base: Constraints, temperature: float = 1.0) -> PlannedConstraints:
        """`base` (range, a locked key, polyphony) narrowed to what the plan asks of the next note; at a
        temperature under `QUOTE_FREE_T` the answer may quote the call, and itself, as played (low repeats)."""
        role, chord_tone, index = self.next_note(base.max_polyphony)
        allowed = frozenset(range(base.pitch_lo, base.pitch_hi + 1))
        pitches = narrow(allowed, self.pitch_rules(role, index, quote=temperature >= QUOTE_FREE_T))
        steps = frozenset({0}) if chord_tone else pace_rule(self.step_s, REFERENCE_STEP_S, self.settings.pace, self.steps)
        return PlannedConstraints(base.pitch_lo, base.pitch_hi, base.key, base.max_polyphony, pitches, steps)

    def pitch_rules(self, role: str, index: int, quote: bool = True) -> list[frozenset[int] | None]:
        """The rules for the next note, most important first."""
        s, call = self.settings, self.call
        rules: list[frozenset[int] | None] = [key_rule(self.scale, self.out_of_key, self.notes, s.key)]
        current = self.onsets[-1] if self.onsets and role != "top" else []
        if role == "top":
            tops = [max(call.melody(o) or o) for o in self.onsets]
            line = self.top_line
            rules.append(register_rule(median(line), max(line) - min(line), tops, s.register, s.span))
            if index == 0:
                rules.append(first_note_rule(call.onsets[-1], s.leap, line[-1]))
            if s.quote and quote:  # before the motif rule: a motif continues transposed or inverted, not as played
                rules.append(quote_rule(line, tops, s.quote + 1))
            if s.repeat and quote:  # the answer's own figures, likewise
                rules.append(repeat_rule(tops, FIGURE_NOTES, s.repeat))
            if motif_due(index, s.motif):
                rules.append(motif_rule(line, line[-2:] + tops))
        elif role == "inner":
            rules.append(below_rule(current, self.chord_width))
        elif role == "bass" and call.split is not None:
            bass = [p for o in self.onsets for p in o if p < call.split]
            line = self.bass_line
            rules.append(register_rule(median(line), max(line) - min(line), bass, s.register, s.span))
            rules.append(bass_rule(current, call.split))
            if index == 0 and not self.top_line:
                rules.append(first_note_rule(call.onsets[-1], s.leap, call.onsets[-1][-1]))
        return rules

    # -- what the screen shows ------------------------------------------------------------

    def readout(self) -> str:
        """A short line: key, register, texture, pace, length, motif."""
        call = self.call
        key = format_key(*self.key) if self.key else "no key"
        sizes = {len(o) for o in call.onsets}
        texture = "two hands" if call.split is not None else ("line" if sizes == {1} else f"chords of {max(sizes)}")
        pulse = f"{call.ioi_s * 1000:.0f} ms" if call.ioi_s else "free"
        pitches = call.pitches
        return (f"plan: {key}, around {median(pitches):.0f} ({min(pitches)}-{max(pitches)}), {texture}, "
                f"pulse {pulse}, {self.notes} notes, motif {self.settings.motif:.0%}")
