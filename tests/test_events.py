"""Notes and model events: validation, canonical order, exact round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from improv.music.events import Event, Note, events_to_notes, notes_to_events, sort_notes


@pytest.mark.parametrize(
    "fields",
    [
        dict(pitch=128, velocity=64, start=0.0, duration=1.0),
        dict(pitch=-1, velocity=64, start=0.0, duration=1.0),
        dict(pitch=60, velocity=0, start=0.0, duration=1.0),
        dict(pitch=60, velocity=128, start=0.0, duration=1.0),
        dict(pitch=60, velocity=64, start=-0.1, duration=1.0),
        dict(pitch=60, velocity=64, start=0.0, duration=-1.0),
        dict(pitch=60, velocity=64, start=float("nan"), duration=1.0),
        dict(pitch=60, velocity=64, start=0.0, duration=1.0, channel=16),
        dict(pitch=60, velocity=64, start=0.0, duration=1.0, track=-1),
        dict(pitch=60, velocity=64, start=0.0, duration=1.0, track=65536),
    ],
)
def test_invalid_notes_are_refused_with_the_field_named(fields: dict) -> None:
    with pytest.raises(ValueError) as caught:
        Note(**fields)
    assert any(name in str(caught.value) for name in fields)


def test_a_note_is_on_track_0_unless_told() -> None:
    """The track (where a MIDI file kept the note) is the last field, so older calls mean what they did."""
    assert Note(60, 80, 0.0, 1.0, 3) == Note(60, 80, 0.0, 1.0, channel=3, track=0)
    assert Note(60, 80, 0.0, 1.0, 3, 2).track == 2
    assert Note(60, 80, 0.0, 1.0, track=1) != Note(60, 80, 0.0, 1.0)


def test_chord_tones_get_step_zero_and_rise_by_pitch() -> None:
    notes = [Note(67, 80, 1.0, 0.5), Note(60, 80, 1.0, 0.5), Note(64, 90, 1.0, 0.25), Note(72, 70, 1.5, 1.0)]
    events = notes_to_events(notes)
    assert events == [
        Event(60, 1.0, 0.5, 80),
        Event(64, 0.0, 0.25, 90),
        Event(67, 0.0, 0.5, 80),
        Event(72, 0.5, 1.0, 70),
    ]


def test_origin_sets_the_first_step() -> None:
    assert notes_to_events([Note(60, 80, 2.5, 0.1)], origin=2.0)[0].step == pytest.approx(0.5)
    assert events_to_notes([Event(60, 0.5, 0.1, 80)], origin=2.0)[0].start == pytest.approx(2.5)


micro_times = st.integers(0, 10**9).map(lambda us: us / 1e6)
notes_strategy = st.lists(
    st.builds(
        Note,
        pitch=st.integers(0, 127),
        velocity=st.integers(1, 127),
        start=micro_times,
        duration=st.integers(0, 10**7).map(lambda us: us / 1e6),
    ),
    max_size=200,
)


@given(notes_strategy)
def test_notes_to_events_to_notes_is_exact(notes: list[Note]) -> None:
    assert events_to_notes(notes_to_events(notes)) == sort_notes(notes)


@given(notes_strategy)
def test_steps_are_never_negative(notes: list[Note]) -> None:
    assert all(e.step >= 0 for e in notes_to_events(notes))
