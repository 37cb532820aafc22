"""The answer planner's rules: small pure functions of the call and of the answer so far.

Each returns what the next note may be: a set of pitches, a set of step bins or a number. The
planner intersects them in priority order and skips a rule that would leave nothing, so a rule
never silences the answer. A new rule is one more function here and one more line in
`planner.Plan.pitch_rules` (or `Plan.constraints` for steps); `accent_rule` is applied where
`answer.py` schedules a note.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from improv.live.call import Call



def pitches_between(lo: float, hi: float) -> frozenset[int]:
    return frozenset(range(max(math.ceil(lo), 0), min(math.floor(hi), 127) + 1))


def key_rule(scale: frozenset[int], out_of_key: int, notes: int, key_share: float) -> frozenset[int] | None:
    """Key: pitches of the call's scale, unless the answer may still leave it (`key_share` of its notes in key)."""
    if len(scale) == 12 or out_of_key + 1 <= (1.0 - key_share) * notes:
        return None
    return frozenset(p for p in range(128) if p % 12 in scale)


def register_rule(reference: float, role_span: int, so_far: Sequence[int], margin: int, extra: int) -> frozenset[int]:
    """Register: around the call's median (`reference`) for this role (melody or bass), and back towards it.

    The window is as wide as the role's span in the call plus `extra` (so the answer is no wider than
    the call plus `extra`, bass and melody windows together included); once the answer's median has drifted more
    than half the margin from the reference, the next note comes from the other side of it, so the
    median stays within the margin in every answer, not only on average.
    """
    half = (role_span + extra) / 2
    lo, hi = reference - half, reference + half
    if so_far:
        drift = statistics.median(so_far) - reference
        if drift > margin / 2:
            hi = reference
        elif drift < -margin / 2:
            lo = reference
    return pitches_between(lo, hi)


def first_note_rule(last_onset: Sequence[int], leap: int, top: int) -> frozenset[int]:
    """Where the answer begins: a step (up to `leap` semitones) from a pitch the call ended on, or a
    tone of its last chord within a fifth of its top."""
    steps = {p + d for p in last_onset for d in range(-leap, leap + 1)}
    classes = {p % 12 for p in last_onset}
    chord_tones = {p for p in range(top - 7, top + 8) if p % 12 in classes}
    return frozenset(p for p in steps | chord_tones if 0 <= p <= 127)


def motif_rule(call_line: Sequence[int], line: Sequence[int]) -> frozenset[int] | None:
    """Material: the next melody pitch continues one of the call's interval pairs, as played, inverted, or
    (without context) takes one of the call's intervals either way: the call's motifs return transposed
    and inverted, their rhythm left to the model. `line` is the melody so far, the call's end included."""
    if len(call_line) < 2 or not line:
        return None
    intervals = [b - a for a, b in zip(call_line, call_line[1:])]
    pairs = set(zip(intervals, intervals[1:]))
    moves: set[int] = set()
    if len(line) >= 2:
        last = line[-1] - line[-2]
        moves = {b for a, b in pairs if a == last} | {-b for a, b in pairs if a == -last}
    if not moves:
        moves = {i for i in intervals} | {-i for i in intervals}
    return frozenset(line[-1] + m for m in moves if 0 <= line[-1] + m <= 127)


def _followers(line: Sequence[int], tail: Sequence[int]) -> list[int]:
    """The pitches that came right after `tail` in `line`, once per occurrence (an occurrence at the
    very end has none)."""
    n = len(tail)
    return [line[i + n] for i in range(len(line) - n) if list(line[i : i + n]) == list(tail)]


def quote_rule(call_line: Sequence[int], answer_line: Sequence[int], run: int) -> frozenset[int] | None:
    """Material, varied: not a pitch that would make the answer's last `run` melody notes a literal quote of
    the call (the same notes at the same pitch). The call's motifs come back transposed, inverted or
    shifted, as a musician develops them, not parroted; shorter echoes stay free."""
    if run < 2 or len(answer_line) < run - 1:
        return None
    quoted = set(_followers(call_line, answer_line[len(answer_line) - run + 1 :]))
    return frozenset(range(128)) - quoted if quoted else None


def repeat_rule(line: Sequence[int], figure: int, times: int) -> frozenset[int] | None:
    """Variety: not a pitch that would play a figure of the answer's own (its last `figure` melody notes,
    at the same pitch) more than `times` times. A figure may return, as a riff does; a third time in one
    answer it comes back transposed or changed, not as a loop."""
    if times < 1 or figure < 2 or len(line) < figure - 1:
        return None
    followers = _followers(line, line[len(line) - figure + 1 :])
    barred = {pitch for pitch in followers if followers.count(pitch) >= times}
    return frozenset(range(128)) - barred if barred else None


def motif_due(onset_index: int, share: float) -> bool:
    """Whether the motif rule steers the melody note of answer onset `onset_index`: `share` of them, evenly."""
    return math.floor((onset_index + 1) * share) > math.floor(onset_index * share)


def below_rule(onset: Sequence[int], width: int) -> frozenset[int]:
    """Texture: a chord's other melody notes, each under the ones before it, within the call's chord width of its top."""
    return pitches_between(max(onset) - max(width, 3), min(onset) - 1)


def bass_rule(onset: Sequence[int], split: int) -> frozenset[int]:
    """Texture, two hands: a bass note below the melody hand and below what the onset holds."""
    return pitches_between(0, min([split - 1, *(p - 1 for p in onset)]))


def onset_size(call: Call, onset_index: int, margin: int, max_polyphony: int | None) -> int:
    """Texture: how many notes answer onset `onset_index` strikes: the call's onsets in turn, at most
    `margin` more than the call's largest, and a line stays a line."""
    sizes = [len(o) for o in call.onsets]
    size = sizes[onset_index % len(sizes)]
    size = min(size, max(sizes) + margin)
    return max(1, min(size, max_polyphony)) if max_polyphony is not None else max(1, size)


def pace_rule(step_s: Sequence[float], reference_s: float, pace: float, so_far: Sequence[float]) -> frozenset[int]:
    """Pace: the step bins a new onset may take: within `pace` times the reference step either way (the
    answer's time scale puts the reference step on the call's pulse), and back towards it once the
    answer's median step (`so_far`, model seconds) has drifted a fifth from it, so that median stays
    near the call's pulse in every answer (short answers too: their first step is on it)."""
    lo, hi = reference_s / pace, reference_s * pace
    if not so_far:  # the answer's first step sets its pace: on the call's pulse
        lo, hi = max(lo, reference_s * 0.8), min(hi, reference_s * 1.25)
    else:
        drift = statistics.median(so_far) / reference_s
        if drift < 0.8:
            lo = reference_s
        elif drift > 1.25:
            hi = reference_s
    allowed = frozenset(i for i, s in enumerate(step_s) if s > 0 and lo * 0.999 <= s <= hi * 1.001)
    if allowed:
        return allowed
    return frozenset({min(range(1, len(step_s)), key=lambda i: abs(math.log(step_s[i] / reference_s)))})


def accent_rule(model_velocity: float, model_mean: float, previous: float | None, accent: float | None) -> float:
    """Dynamics: the model's accent, a factor on the call's loudness at this onset (its velocity over its
    own running mean), at most `accent` either way and moving by at most half that from the answer's
    previous note, as a player's touch moves (None: the model's accent as sampled).

    The velocity head learned scores' few dynamic levels: unbounded, a steady call at 90 was answered
    120 and then 45 within two beats."""
    ratio = model_velocity / model_mean if model_mean > 0 else 1.0
    if accent is None:
        return ratio
    lo, hi = 1.0 - accent, 1.0 + accent
    if previous is not None:
        lo, hi = max(lo, previous - accent / 2), min(hi, previous + accent / 2)
    return min(max(ratio, lo), hi)


def answer_length(call_notes: int, reply_notes: int, share: float) -> int:
    """Length: `share` of the call's notes (a short call, a short answer), at least half of them and at
    most `reply_notes`."""
    return max(1, min(reply_notes, max(math.ceil(call_notes * share), math.ceil(call_notes / 2))))


def time_scale(call_ioi_s: float | None, reference_s: float, fallback: float) -> float:
    """Pace: seconds of the answer per second of the model, so the model's reference step lands on the call's pulse."""
    if call_ioi_s is None or call_ioi_s <= 0:
        return fallback
    return min(max(call_ioi_s / reference_s, 0.1), 10.0)


PULSE_RATIOS = (1 / 4, 1 / 3, 1 / 2, 1.0, 3 / 2, 2.0, 3.0, 4.0)


def snap_to_pulse(step_s: float, pulse_s: float | None) -> float:
    """Move a reply step onto the player's pulse: the nearest simple ratio of it (on a log scale).

    The model's steps come from notated music, in bins; scaled to the player's tempo they land
    near, not on, the player's subdivisions. Snapping keeps the answer in the player's time.
    Chord tones (0), ornaments (under a sixth of the pulse) and long rests (over 4 pulses) stay.
    """
    if pulse_s is None or pulse_s <= 0 or step_s < pulse_s / 6 or step_s > 4 * pulse_s:
        return step_s
    ratio = step_s / pulse_s
    best = min(PULSE_RATIOS, key=lambda r: abs(math.log(ratio / r)))
    return best * pulse_s
