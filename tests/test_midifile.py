"""MIDI files: real files, hand-built files with tempo maps, malformed input, round trips."""

from __future__ import annotations

import io
from pathlib import Path

import mido
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import improv
from improv import MidiFileError, Note, read_midi, write_midi
from improv.midi.files import read_midi_tracks, track_names

music21 = pytest.importorskip("music21")
PRIMITIVES = sorted((Path(music21.__file__).parent / "midi" / "testPrimitive").glob("*.mid"))


def count_sounding_note_ons(path: Path) -> int:
    """Independent count: note-ons with velocity > 0, straight from the tracks."""
    midi = mido.MidiFile(path)
    return sum(1 for track in midi.tracks for m in track if m.type == "note_on" and m.velocity > 0)


def test_music21_ships_the_test_files() -> None:
    assert len(PRIMITIVES) >= 20


@pytest.mark.parametrize("path", PRIMITIVES, ids=lambda p: p.name)
def test_real_files_keep_every_sounding_note(path: Path) -> None:
    notes = read_midi(path)
    assert len(notes) == count_sounding_note_ons(path)
    assert notes == sorted(notes, key=lambda n: (n.start, n.pitch, n.channel))


def test_real_files_include_tempo_changes_and_several_tracks() -> None:
    """The acceptance asks for real multi-track files with tempo changes: some must be among them."""
    multi = [p for p in PRIMITIVES if len(mido.MidiFile(p).tracks) > 1]
    tempo = [p for p in PRIMITIVES if sum(m.type == "set_tempo" for t in mido.MidiFile(p).tracks for m in t) > 1]
    assert multi and tempo


def build(tracks: list[list[mido.Message]], midi_type: int = 1, tpb: int = 480) -> io.BytesIO:
    midi = mido.MidiFile(type=midi_type, ticks_per_beat=tpb)
    for messages in tracks:
        midi.tracks.append(mido.MidiTrack(messages))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    buffer.seek(0)
    return buffer


def on(note: int, time: int, velocity: int = 100, channel: int = 0) -> mido.Message:
    return mido.Message("note_on", note=note, velocity=velocity, time=time, channel=channel)


def off(note: int, time: int, channel: int = 0) -> mido.Message:
    return mido.Message("note_off", note=note, velocity=0, time=time, channel=channel)


def tempo(bpm: float, time: int) -> mido.MetaMessage:
    return mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=time)


def test_tempo_change_in_another_track_applies_to_all_tracks() -> None:
    # Tempo track: 120 BPM, then 60 BPM from beat 2 on. Note track: notes on beats 0..3.
    conductor = [tempo(120, 0), tempo(60, 960)]
    notes = [on(60, 0), off(60, 480), on(62, 0), off(62, 480), on(64, 0), off(64, 480), on(65, 0), off(65, 480)]
    result = read_midi(build([conductor, notes]))
    assert [n.start for n in result] == pytest.approx([0.0, 0.5, 1.0, 2.0])
    assert [n.duration for n in result] == pytest.approx([0.5, 0.5, 1.0, 1.0])


def test_tempo_change_written_in_a_note_track_counts_too() -> None:
    notes = [on(60, 0), off(60, 480), tempo(240, 0), on(62, 0), off(62, 480)]
    result = read_midi(build([[tempo(120, 0)], notes]))
    assert [(n.start, n.duration) for n in result] == pytest.approx([(0.0, 0.5), (0.5, 0.25)])


def test_type0_file_with_drums_keeps_channels() -> None:
    track = [on(36, 0, channel=9), on(60, 0, channel=0), off(36, 480, channel=9), off(60, 0, channel=0)]
    result = read_midi(build([track], midi_type=0))
    assert {(n.pitch, n.channel) for n in result} == {(36, 9), (60, 0)}
    assert all(n.duration == pytest.approx(0.5) for n in result)


def test_velocity_zero_note_on_ends_the_note() -> None:
    result = read_midi(build([[on(60, 0, velocity=90), on(60, 480, velocity=0)]]))
    assert result == [Note(60, 90, 0.0, 0.5)]


def test_overlapping_notes_of_one_pitch_both_survive() -> None:
    track = [on(60, 0, velocity=50), on(60, 240, velocity=70), off(60, 240), off(60, 240)]
    result = read_midi(build([track]))
    assert [(n.velocity, n.start, n.duration) for n in result] == pytest.approx([(50, 0.0, 0.5), (70, 0.25, 0.5)])


def test_notes_open_at_the_end_close_at_the_end_of_the_file() -> None:
    track = [on(60, 0), on(64, 480), mido.MetaMessage("end_of_track", time=960)]
    result = read_midi(build([track]))
    assert [(n.pitch, n.duration) for n in result] == pytest.approx([(60, 1.5), (64, 1.0)])


def test_orphan_note_off_is_ignored() -> None:
    result = read_midi(build([[off(61, 0), on(60, 0), off(60, 480)]]))
    assert [n.pitch for n in result] == [60]


def test_write_read_round_trip_with_tracks_and_tempo_changes(tmp_path: Path) -> None:
    player = [Note(60, 100, 0.0, 0.4), Note(64, 80, 0.5, 0.25, channel=1), Note(67, 1, 1.333, 2.0)]
    answer = [Note(72, 127, 2.0, 0.1, channel=2), Note(72, 64, 2.1, 0.3, channel=2), Note(48, 33, 3.71, 0.05)]
    path = tmp_path / "session.mid"
    write_midi({"player": player, "improv": answer}, path, bpm=97.0, tempo_changes=[(1.0, 150.0), (2.5, 61.0)])
    midi = mido.MidiFile(path)
    assert midi.type == 1
    assert sum(m.type == "set_tempo" for t in midi.tracks for m in t) == 3
    assert track_names(path) == ["player", "improv"]  # a two-part session is a two-track file
    parts = read_midi_tracks(path)
    assert set(parts) == {"player", "improv"}
    for name, original in (("player", player), ("improv", answer)):
        for got, want in zip(parts[name], original, strict=True):
            assert (got.pitch, got.velocity, got.channel) == (want.pitch, want.velocity, want.channel)
            assert got.start == pytest.approx(want.start, abs=0.002)
            assert got.duration == pytest.approx(want.duration, abs=0.002)
    assert len(read_midi(path)) == len(player) + len(answer)


def test_repeated_note_ending_where_the_next_starts_keeps_both(tmp_path: Path) -> None:
    notes = [Note(60, 90, 0.0, 0.5), Note(60, 90, 0.5, 0.5), Note(60, 90, 1.0, 0.0)]
    write_midi(notes, tmp_path / "r.mid")
    result = read_midi(tmp_path / "r.mid")
    assert [(n.start, n.duration) for n in result] == pytest.approx([(0, 0.5), (0.5, 0.5), (1.0, 0.0)])


# --- malformed input -------------------------------------------------------

def _valid_bytes() -> bytes:
    return build([[on(60, 0), off(60, 480), on(62, 0), off(62, 480)]]).getvalue()


MALFORMED: dict[str, bytes] = {
    "empty": b"",
    "random": bytes(range(256)) * 3,
    "text": b"This is a shopping list, not a MIDI file.\nmilk\neggs\n",
    "truncated": _valid_bytes()[:30],
    "header-only": _valid_bytes()[:14],
    "bad-track-chunk": _valid_bytes()[:14] + b"MXrk\x00\x00\x00\x04\x00\x90\x3c\x40",
    "running-status-without-status": _valid_bytes()[:14] + b"MTrk\x00\x00\x00\x04\x00\x3c\x40\x00",
    "data-byte-over-127": _valid_bytes()[:14] + b"MTrk\x00\x00\x00\x04\x00\x90\xbc\x40",
    "huge-chunk-length": _valid_bytes()[:14] + b"MTrk\x7f\xff\xff\xff\x00\x90",
    "zero-division": b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x00" + _valid_bytes()[14:],
    "smpte-zero-ticks-per-frame": b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\xe7\x00" + _valid_bytes()[14:],
}

# 25 frames per second (0xE7 = -25), 40 ticks per frame: a tick is 1 ms whatever the tempo.
SMPTE = (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\xe7\x28"
         b"MTrk\x00\x00\x00\x10"
         b"\x00\xff\x51\x03\x07\xa1\x20"  # a tempo, which SMPTE timing ignores
         b"\x87\x68\x90\x3c\x64"  # 1000 ticks: note-on C4
         b"\x83\x74\x80\x3c\x00"  # 500 ticks later: its note-off
         b"\x00\xff\x2f\x00")


def test_smpte_timed_files_count_ticks_in_frames() -> None:
    data = bytearray(SMPTE)
    data[18:22] = (len(data) - 22).to_bytes(4, "big")  # the track chunk's length
    [note] = read_midi(io.BytesIO(bytes(data)))
    assert (note.pitch, note.velocity) == (60, 100)
    assert note.start == pytest.approx(1.0) and note.duration == pytest.approx(0.5)


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_files_raise_one_line_midi_file_error(kind: str, tmp_path: Path) -> None:
    path = tmp_path / f"{kind}.mid"
    path.write_bytes(MALFORMED[kind])
    with pytest.raises(MidiFileError) as caught:
        read_midi(path)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "\n" not in message
    assert str(path) in message


@pytest.mark.parametrize("make", ["missing", "directory"])
def test_missing_or_directory_raise_midi_file_error(make: str, tmp_path: Path) -> None:
    path = tmp_path / "x.mid"
    if make == "directory":
        path.mkdir()
    with pytest.raises(MidiFileError, match=str(path)):
        read_midi(path)


def test_read_midi_is_exported_at_top_level() -> None:
    assert improv.read_midi is read_midi and improv.write_midi is write_midi
    assert issubclass(improv.MidiFileError, ValueError)


# --- round-trip property ---------------------------------------------------

TPB = 480


@st.composite
def notes_and_tempo(draw: st.DrawFn) -> tuple[list[Note], float, list[tuple[float, float]]]:
    bpm = draw(st.floats(30, 300))
    changes = draw(st.lists(st.tuples(st.floats(0.01, 20), st.floats(30, 300)), max_size=5))
    raw = draw(
        st.lists(
            st.tuples(
                st.integers(0, 127), st.integers(1, 127), st.floats(0, 20), st.floats(0, 4), st.integers(0, 15)
            ),
            max_size=40,
        )
    )
    notes: list[Note] = []
    for pitch, velocity, start, duration, channel in sorted(raw, key=lambda r: r[2]):
        # Overlapping notes of one pitch and channel cannot be told apart in MIDI: keep them apart.
        if any(n.pitch == pitch and n.channel == channel and n.end >= start for n in notes):
            continue
        notes.append(Note(pitch, velocity, round(start, 6), round(duration, 6), channel))
    return notes, bpm, changes


@settings(max_examples=60, deadline=None)
@given(notes_and_tempo())
def test_notes_survive_a_file_within_one_tick(case: tuple[list[Note], float, list[tuple[float, float]]]) -> None:
    notes, bpm, changes = case
    buffer = io.BytesIO()
    write_midi(notes, buffer, bpm=bpm, tempo_changes=changes, ticks_per_beat=TPB)
    buffer.seek(0)
    result = read_midi(buffer)
    tempos = sorted(changes)

    def tick_s(t: float) -> float:
        """The longest tick within 5 ms of `t` (a tempo change may fall between a time and its tick)."""
        return max(60.0 / TPB / next((b for s, b in reversed(tempos) if s <= u), bpm) for u in (t - 0.005, t + 0.005))

    expected = sorted(notes, key=lambda n: (n.start, n.pitch, n.channel))
    assert len(result) == len(expected)
    matched = sorted(result, key=lambda n: (n.channel, n.pitch, n.start))
    for got, want in zip(matched, sorted(expected, key=lambda n: (n.channel, n.pitch, n.start))):
        assert (got.pitch, got.velocity, got.channel) == (want.pitch, want.velocity, want.channel)
        assert abs(got.start - want.start) <= tick_s(want.start)
        assert abs(got.end - want.end) <= tick_s(want.end)


def test_write_to_unwritable_place_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        write_midi([Note(60, 100, 0, 1)], tmp_path / "no" / "such" / "dir.mid")
