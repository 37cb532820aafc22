"""MIDI files are exact: write -> read gives back every note, to the tick, in its own track.

Times are built on the file's tick grid so that "the identity" means equal `Note`s. Real files
are music21's test files, its two Mozart files, and sequenced-style files with drums built here
with mido; pretty_midi is the second, independent reader.
"""

from __future__ import annotations

import io
import random
import warnings
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import mido
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from improv import Note, read_midi, write_midi
from improv.midi.files import TempoMap, read_midi_tracks, track_names
from improv.music.events import quantize_time

music21 = pytest.importorskip("music21")
pretty_midi = pytest.importorskip("pretty_midi")

MUSIC21 = Path(music21.__file__).parent
REAL_FILES = sorted((MUSIC21 / "midi" / "testPrimitive").glob("*.mid")) + sorted((MUSIC21 / "omr").glob("*.mid"))
DRUMS = 9


def full_key(note: Note) -> tuple:
    return (note.track, note.channel, note.pitch, note.start, note.duration, note.velocity)


def same_notes(got: Iterable[Note], want: Iterable[Note]) -> bool:
    """Equal as multisets (reading sorts by onset and pitch only, so ties may come in another order)."""
    return sorted(got, key=full_key) == sorted(want, key=full_key)


def round_trip(notes: list[Note], **options: object) -> list[Note]:
    buffer = io.BytesIO()
    write_midi(notes, buffer, **options)  # type: ignore[arg-type]
    buffer.seek(0)
    return read_midi(buffer)


def end(note: Note) -> float:
    return quantize_time(note.end)  # start + duration in floats may miss the microsecond grid


def nested(notes: Iterable[Note]) -> bool:
    """True if a note lies strictly inside another of its track, channel and pitch."""
    groups: dict[tuple[int, int, int], list[Note]] = defaultdict(list)
    for note in notes:
        groups[note.track, note.channel, note.pitch].append(note)
    return any(a.start < b.start and end(b) < end(a) for group in groups.values() for a in group for b in group)


def first_in_first_out(notes: Iterable[Note]) -> list[Note]:
    """What a first-in-first-out reader can hold: per track, channel and pitch, the onsets
    (with their velocities) in order, meeting the ends in order."""
    groups: dict[tuple[int, int, int], list[Note]] = defaultdict(list)
    for note in notes:
        groups[note.track, note.channel, note.pitch].append(note)
    out = []
    for group in groups.values():
        onsets = sorted(group, key=lambda n: (n.start, end(n), n.velocity))
        for note, stop in zip(onsets, sorted(end(n) for n in group), strict=True):
            out.append(Note(note.pitch, note.velocity, note.start, quantize_time(stop - note.start),
                            note.channel, note.track))
    return out


def offs_before_ons(data: bytes) -> None:
    """Within each track and tick: every off before every on, except a zero-length note's on, off."""
    for track in mido.MidiFile(file=io.BytesIO(data)).tracks:
        tick = 0
        at_tick: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
        for msg in track:
            tick += msg.time
            if msg.type in ("note_on", "note_off"):
                kind = "on" if msg.type == "note_on" and msg.velocity > 0 else "off"
                at_tick[tick].append((kind, msg.channel, msg.note))
        for events in at_tick.values():
            rest: list[tuple[str, int, int]] = []
            for event in events:
                if rest and event[0] == "off" and rest[-1] == ("on", *event[1:]):
                    rest.pop()  # on then off of one note: zero length
                else:
                    rest.append(event)
            kinds = [kind for kind, _, _ in rest]
            assert kinds == sorted(kinds, key=lambda k: k == "on"), events


# --- random note lists on a tick grid ---------------------------------------------

TEMPOS = st.integers(250_000, 1_500_000)  # microseconds per beat: 240 to 40 BPM


@st.composite
def grid_notes(draw: st.DrawFn, allow_nesting: bool = False) -> tuple[list[Note], dict]:
    """Notes whose times sit on the ticks of a tempo map with changes, and how to write that map."""
    tpb = draw(st.sampled_from([96, 480, 960]))
    first = draw(TEMPOS)
    changes = draw(st.lists(st.tuples(st.integers(1, 16 * tpb), TEMPOS), max_size=3, unique_by=lambda c: c[0]))
    tempo = TempoMap.from_tempos([(0, first), *changes], tpb)
    tracks = draw(st.integers(1, 4))
    # A few keys (track, channel, pitch) per list, so that notes of one key meet: overlaps, re-strikes.
    keys = draw(st.lists(
        st.tuples(st.integers(0, tracks - 1), st.integers(0, 15), st.sampled_from([36, 42, 60]) | st.integers(0, 127)),
        min_size=1, max_size=6,
    ))
    beat = st.integers(0, 16).map(lambda half_beats: half_beats * tpb // 2)  # re-strikes on one tick
    raw = draw(st.lists(
        st.tuples(
            st.sampled_from(keys),
            st.integers(1, 127),
            beat | st.integers(0, 8 * tpb),
            st.just(0) | st.integers(1, 4 * tpb) | st.sampled_from([tpb // 2, tpb]),
        ),
        max_size=60,
    ))
    notes: list[Note] = []
    for (track, channel, pitch), velocity, start, length in raw:
        t0 = quantize_time(tempo.to_seconds(start))
        t1 = quantize_time(tempo.to_seconds(start + length))
        note = Note(pitch, velocity, t0, max(quantize_time(t1 - t0), 0.0), channel, track)
        if allow_nesting or not nested([*notes, note]):
            notes.append(note)
    options = {
        "ticks_per_beat": tpb,
        "bpm": 60e6 / first,
        "tempo_changes": [(tempo.to_seconds(tick), 60e6 / us) for tick, us in sorted(changes)],
    }
    return notes, options


@settings(max_examples=300, deadline=None)
@given(grid_notes())
def test_write_then_read_is_the_identity(case: tuple[list[Note], dict]) -> None:
    notes, options = case
    buffer = io.BytesIO()
    write_midi(notes, buffer, **options)
    offs_before_ons(buffer.getvalue())
    buffer.seek(0)
    assert same_notes(read_midi(buffer), notes)


@settings(max_examples=150, deadline=None)
@given(grid_notes(allow_nesting=True))
def test_notes_inside_a_note_of_their_pitch_come_back_first_in_first_out(case: tuple[list[Note], dict]) -> None:
    """No standard MIDI file can hold a note strictly inside another of its pitch: those come
    back with every onset and velocity and the ends in order; all others unchanged."""
    notes, options = case
    result = round_trip(notes, **options)
    assert same_notes(result, first_in_first_out(notes))
    if not nested(notes):
        assert same_notes(result, notes)


def test_a_short_note_inside_a_long_one_of_another_track_keeps_its_ends() -> None:
    """The case that came back swapped (2.4 s) when every track was written into one."""
    long = Note(60, 40, 0.0, 3.0, channel=0, track=1)
    short = Note(60, 110, 0.5, 0.25, channel=0, track=2)
    assert same_notes(round_trip([long, short]), [long, short])


def test_a_zero_length_note_then_a_real_one_on_the_same_tick() -> None:
    notes = [Note(60, 90, 1.0, 0.0), Note(60, 70, 1.0, 0.5), Note(60, 80, 0.5, 0.5)]
    buffer = io.BytesIO()
    write_midi(notes, buffer)
    offs_before_ons(buffer.getvalue())
    messages = [(m.type, m.velocity) for m in mido.MidiFile(file=io.BytesIO(buffer.getvalue())).tracks[0]
                if m.type.startswith("note")]
    assert messages == [("note_on", 80), ("note_off", 0), ("note_on", 90), ("note_off", 0), ("note_on", 70),
                        ("note_off", 0)]
    buffer.seek(0)
    assert same_notes(read_midi(buffer), notes)
    buffer.seek(0)
    [instrument] = pretty_midi.PrettyMIDI(buffer).instruments  # it drops zero-length notes, not the real one
    assert [(n.velocity, n.start, n.end) for n in instrument.notes] == pytest.approx([(80, 0.5, 1.0), (70, 1.0, 1.5)])


def test_tracks_are_named_and_kept(tmp_path: Path) -> None:
    notes = [Note(60, 90, 0.0, 1.0, track=1), Note(62, 90, 0.0, 1.0, track=3)]
    write_midi(notes, tmp_path / "named.mid", track_names=["tempo", "right", "", "left"])
    assert track_names(tmp_path / "named.mid") == ["tempo", "right", "", "left"]
    write_midi(notes, tmp_path / "default.mid")
    assert track_names(tmp_path / "default.mid") == ["notes 0", "notes 1", "notes 2", "notes 3"]
    write_midi([Note(60, 90, 0.0, 1.0)], tmp_path / "one.mid")
    assert track_names(tmp_path / "one.mid") == ["notes"]
    parts = read_midi_tracks(tmp_path / "named.mid")
    assert {name: [n.track for n in part] for name, part in parts.items()} == {"right": [1], "left": [3]}


def test_a_mapping_names_the_tracks_whatever_the_notes_say(tmp_path: Path) -> None:
    """Sessions: the player's and improv's notes stay in their two tracks."""
    player = [Note(60, 90, 0.0, 2.0, track=5)]
    answer = [Note(60, 80, 0.5, 0.5, track=5)]  # inside the player's note, on its pitch and channel
    write_midi({"player": player, "improv": answer}, tmp_path / "session.mid")
    assert track_names(tmp_path / "session.mid") == ["player", "improv"]
    parts = read_midi_tracks(tmp_path / "session.mid")
    assert parts["player"] == [Note(60, 90, 0.0, 2.0, track=0)]
    assert parts["improv"] == [Note(60, 80, 0.5, 0.5, track=1)]


# --- real files ---------------------------------------------------------------------


def sequenced(seed: int) -> mido.MidiFile:
    """A sequencer-style type-1 file: a conductor with tempo changes, melodic tracks, a drum track,
    same-pitch notes across tracks and within one, zero-length drum hits, velocity-0 note-offs,
    program changes, unnamed and same-named tracks, and (odd seeds) a tempo change outside the conductor."""
    rng = random.Random(seed)
    tpb = rng.choice([96, 192, 480, 960])
    midi = mido.MidiFile(type=1, ticks_per_beat=tpb)
    conductor = [(0, mido.MetaMessage("set_tempo", tempo=rng.randrange(300_000, 900_000)))]
    conductor += [(rng.randrange(tpb, 32 * tpb), mido.MetaMessage("set_tempo", tempo=rng.randrange(300_000, 900_000)))
                  for _ in range(rng.randrange(1, 4))]
    tracks = [("", conductor)]
    for index in range(rng.randrange(2, 6)):
        channel = index % 3
        events: list[tuple[int, mido.Message | mido.MetaMessage]] = [
            (0, mido.Message("program_change", program=rng.randrange(128), channel=channel))]
        for _ in range(rng.randrange(20, 60)):
            start = rng.randrange(0, 32 * tpb) // (tpb // 4) * (tpb // 4)
            length = rng.choice([tpb // 4, tpb // 2, tpb, 3 * tpb, rng.randrange(1, 4 * tpb)])
            pitch = rng.choice([48, 55, 60, 64, 67, rng.randrange(36, 90)])
            events.append((start, mido.Message("note_on", note=pitch, velocity=rng.randrange(1, 128), channel=channel)))
            off = (mido.Message("note_on", note=pitch, velocity=0, channel=channel) if rng.random() < 0.5
                   else mido.Message("note_off", note=pitch, velocity=64, channel=channel))
            events.append((start + length, off))
        if index == 1 and seed % 2:
            events.append((5 * tpb, mido.MetaMessage("set_tempo", tempo=450_000)))
        tracks.append(("Keys" if index < 2 else "", events))
    drums: list[tuple[int, mido.Message | mido.MetaMessage]] = []
    for step in range(64):
        # kick, snare, closed hat: at most a step long; crash: zero-length hits; open hat: rings over the next ones
        for pitch, chance, lengths in ((36, 0.5, [1, tpb // 4]), (38, 0.3, [tpb // 8]), (42, 0.9, [1, tpb // 8]),
                                       (49, 0.1, [0]), (46, 0.2, [tpb // 2, tpb])):
            if rng.random() < chance:
                tick = step * tpb // 4
                drums.append((tick, mido.Message("note_on", note=pitch, velocity=rng.randrange(40, 128), channel=DRUMS)))
                length = rng.choice(lengths)
                drums.append((tick + length, mido.Message("note_off", note=pitch, velocity=0, channel=DRUMS)))
    tracks.append(("Drums", drums))
    for name, events in tracks:
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name)] if name else [])
        last = 0
        for tick, msg in sorted(events, key=lambda e: e[0]):  # stable: at one tick, in the order made
            track.append(msg.copy(time=tick - last))
            last = tick
        midi.tracks.append(track)
    return midi


@pytest.fixture(scope="module")
def real_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("sequenced")
    built = []
    for seed in range(6):
        path = folder / f"sequenced{seed}.mid"
        sequenced(seed).save(path)
        built.append(path)
    return REAL_FILES + built


def own_grid(path: Path) -> dict:
    """write_midi's options that put a file's notes back on its own tick grid."""
    midi = mido.MidiFile(path)
    changes = []
    for track in midi.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                changes.append((tick, msg.tempo))
    tempo = TempoMap.from_tempos(changes, midi.ticks_per_beat)
    bpm = 60e6 / (tempo.seconds_per_tick[0] * 1e6 * midi.ticks_per_beat)
    return {
        "ticks_per_beat": midi.ticks_per_beat,
        "bpm": bpm,
        "tempo_changes": [(s, 60.0 / (spt * midi.ticks_per_beat)) for t, s, spt in
                          zip(tempo.ticks[1:], tempo.seconds[1:], tempo.seconds_per_tick[1:])],
    }


def test_the_real_files_are_multi_track_with_drums_and_same_pitch_overlaps(real_files: list[Path]) -> None:
    """What the round trips below stand on: real files of many tracks, drums, overlaps across tracks."""
    notes = [n for path in real_files for n in read_midi(path)]
    assert sum(len(mido.MidiFile(p).tracks) > 2 for p in real_files) >= 10
    assert sum(n.channel == DRUMS for n in notes) > 300
    assert sum(n.duration == 0 for n in notes) > 20
    across = 0
    for path in real_files:
        by_key: dict[tuple[int, int], list[Note]] = defaultdict(list)
        for note in read_midi(path):
            by_key[note.channel, note.pitch].append(note)
        across += sum(a.track != b.track and a.start < b.start < end(b) < end(a)
                      for group in by_key.values() for a in group for b in group)
    assert across > 10  # a note inside a same-pitch note of another track: what merging tracks broke


def test_real_files_come_back_note_for_note_on_their_own_grid(real_files: list[Path]) -> None:
    for path in real_files:
        notes = read_midi(path)
        assert not nested(notes)  # a first-in-first-out reader never makes one
        assert same_notes(round_trip(notes, **own_grid(path)), notes), path.name


def test_real_files_come_back_within_a_tick_on_the_default_grid(real_files: list[Path]) -> None:
    tick_s = 0.5 / 960  # 120 BPM, 960 ticks per beat
    for path in real_files:
        notes = read_midi(path)
        result = round_trip(notes)
        assert len(result) == len(notes), path.name
        for got, want in zip(sorted(result, key=full_key), sorted(notes, key=full_key), strict=True):
            assert (got.track, got.channel, got.pitch, got.velocity) == (want.track, want.channel, want.pitch,
                                                                          want.velocity), path.name
            assert abs(got.start - want.start) <= tick_s / 2 + 1e-6
            assert abs(got.end - want.end) <= tick_s / 2 + 1e-6


# --- a second reader ------------------------------------------------------------------


def overlapping(notes: Iterable[Note]) -> set[tuple[bool, int]]:
    """(drums?, pitch) of every same-pitch overlap within a track and channel (touching zero-length notes count)."""
    groups: dict[tuple[int, int, int], list[Note]] = defaultdict(list)
    for note in notes:
        groups[note.track, note.channel, note.pitch].append(note)
    found = set()
    for (_, channel, pitch), group in groups.items():
        group.sort(key=lambda n: n.start)
        for a, b in zip(group, group[1:]):
            if b.start < a.end or b.start == a.start or (b.start == a.end and 0 in (a.duration, b.duration)):
                found.add((channel == DRUMS, pitch))
    return found


def pretty_notes(source: Path | io.BytesIO, leave_out: set[tuple[bool, int]]) -> list[tuple]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tempo outside track 0: pretty_midi's times would be wrong
        midi = pretty_midi.PrettyMIDI(source)
    return sorted((instrument.is_drum, note.pitch, note.velocity, note.start, note.end)
                  for instrument in midi.instruments for note in instrument.notes
                  if (instrument.is_drum, note.pitch) not in leave_out)


def tempo_only_in_the_first_track(path: Path) -> bool:
    return not any(m.type == "set_tempo" for track in mido.MidiFile(path).tracks[1:] for m in track)


def test_pretty_midi_reads_improvs_output_as_it_reads_the_original(real_files: list[Path]) -> None:
    compared = total = drums = 0
    checked = [path for path in real_files if tempo_only_in_the_first_track(path)]
    assert len(checked) >= 20
    for path in checked:
        notes = read_midi(path)
        leave_out = overlapping(notes)
        buffer = io.BytesIO()
        write_midi(notes, buffer)
        buffer.seek(0)
        want, got = pretty_notes(path, leave_out), pretty_notes(buffer, leave_out)
        assert len(got) == len(want), path.name
        for a, b in zip(got, want):
            assert a[:3] == b[:3], path.name
            assert a[3:] == pytest.approx(b[3:], abs=0.5 / 960 / 2 + 1e-6), path.name
        compared += len(want)
        total += len(notes)
        drums += sum(is_drum for is_drum, *_ in want)
    assert drums > 100
    assert compared > total / 2  # most notes have no same-pitch overlap: the comparison covers them
