"""Offline rendering: notes or a MIDI file played with a SoundFont into 16-bit stereo audio and WAV files."""

from __future__ import annotations

import wave
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from improv.errors import SynthError
from improv.midi import status
from improv.music.events import Note
from improv.sound.channels import DRUM_CHANNEL, IMPROV_PROGRAM, PLAYER_PROGRAM, check_int
from improv.sound.fluid_synth import DEFAULT_GAIN, DEFAULT_SAMPLE_RATE, MEMORY_DRIVER, SAMPLE_RATE_RANGE, Synth
from improv.sound.soundfont import find_soundfont

MAX_TAIL_S = 10.0
SILENT_SAMPLE = 2  # |int16 sample| at or below this counts as silence (dither)

# improv's tracks in the files it writes: sessions (`s` in the TUI) and `improv generate`
# (the others, `player` and `primer`, are the player's).
IMPROV_TRACKS = ("improv", "continuation")


class Rendered(NamedTuple):
    wav_path: Path
    soundfont: Path
    seconds: float
    notes: int


def default_programs(
    track_names: Sequence[str], player_program: int = PLAYER_PROGRAM, improv_program: int = IMPROV_PROGRAM
) -> dict[str, int]:
    """Programs by track: improv's tracks (`improv`, `continuation`) get `improv_program`, all others the player's."""
    return {name: improv_program if name in IMPROV_TRACKS else player_program for name in track_names}


def _track_channels(track_names: Sequence[str]) -> dict[str, int]:
    melodic = [channel for channel in range(status.CHANNELS) if channel != DRUM_CHANNEL]
    return {name: melodic[index % len(melodic)] for index, name in enumerate(track_names)}


def render(
    notes_by_track: Mapping[str, Sequence[Note]],
    soundfont: str | Path,
    programs: Mapping[str, int] | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    *,
    gain: float = DEFAULT_GAIN,
    max_tail_s: float = MAX_TAIL_S,
) -> np.ndarray:
    """The notes played with the SoundFont: int16 frames, shape (n, 2), from 0 s to the end of the last tail.

    Each track plays on its own channel with `programs[track]` (default: see
    `default_programs`); notes on MIDI channel 10 (index 9) play the drum kit.
    The audio runs past the last note-off until every voice and the reverb
    have died away, at most `max_tail_s`.
    """
    names = list(notes_by_track)
    chosen = default_programs(names) | dict(programs or {})
    channels = _track_channels(names)
    events: list[tuple[int, int, int, int, int]] = []  # frame, 0 off / 1 on, channel, pitch, velocity
    for name, notes in notes_by_track.items():
        for note in notes:
            channel = DRUM_CHANNEL if note.channel == DRUM_CHANNEL else channels[name]
            on = round(note.start * sample_rate)
            off = max(round(note.end * sample_rate), on + 1)
            events.append((on, 1, channel, note.pitch, note.velocity))
            events.append((off, 0, channel, note.pitch, 0))
    events.sort()
    chunks: list[np.ndarray] = []
    with Synth(soundfont, audio_driver=MEMORY_DRIVER, sample_rate=sample_rate, gain=gain) as synth:
        for name in names:
            synth.set_program(channels[name], check_int(chosen[name], f"program of track '{name}'", 0, 127))
        now = 0
        for frame, is_on, channel, pitch, velocity in events:
            if frame > now:
                chunks.append(synth.read(frame - now))
                now = frame
            synth.send([status.NOTE_ON | channel, pitch, velocity] if is_on else [status.NOTE_OFF | channel, pitch, 0])
        block = max(1, sample_rate // 20)
        for _ in range(max(1, int(max_tail_s * sample_rate) // block)):
            chunk = synth.read(block)
            chunks.append(chunk)
            if synth.active_voices() == 0 and int(np.abs(chunk.astype(np.int32)).max()) <= SILENT_SAMPLE:
                break
    return np.concatenate(chunks) if chunks else np.zeros((0, 2), dtype=np.int16)


def write_wav(frames: np.ndarray, path: str | Path, sample_rate: int = DEFAULT_SAMPLE_RATE) -> Path:
    """Write int16 stereo frames (n, 2) as a 16-bit WAV file."""
    path = Path(path)
    data = np.ascontiguousarray(frames, dtype="<i2")
    try:
        # Opened here, not by wave.open(name): a Wave_write whose file failed to open complains in __del__.
        with path.open("wb") as file, wave.open(file, "wb") as out:
            out.setnchannels(data.shape[1] if data.ndim == 2 else 1)
            out.setsampwidth(2)
            out.setframerate(sample_rate)
            out.writeframes(data.tobytes())
    except OSError as error:
        raise SynthError(f"{path}: cannot write WAV: {error.strerror or error}") from None
    return path


def render_file(
    midi_path: str | Path,
    wav_path: str | Path,
    soundfont: str | Path | None = None,
    *,
    player_program: int = PLAYER_PROGRAM,
    improv_program: int = IMPROV_PROGRAM,
    programs: Mapping[str, int] | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    configured_soundfont: str | None = None,
) -> Rendered:
    """Render a MIDI file (a saved session, a `generate` output, any MIDI file) to a 16-bit WAV.

    Tracks `player`/`primer` get `player_program`, `improv`/`continuation`
    `improv_program`, others the player's unless `programs` names them. The
    SoundFont is found with `find_soundfont(soundfont, configured_soundfont)`.
    """
    from improv.midi.files import read_midi_tracks

    player_program = check_int(player_program, "player program", 0, 127)
    improv_program = check_int(improv_program, "improv program", 0, 127)
    sample_rate = check_int(sample_rate, "sample rate (Hz)", *SAMPLE_RATE_RANGE)
    tracks = read_midi_tracks(midi_path)
    count = sum(len(notes) for notes in tracks.values())
    if count == 0:
        raise SynthError(f"{midi_path}: no notes to render")
    font = find_soundfont(soundfont, configured_soundfont)
    chosen = default_programs(list(tracks), player_program, improv_program) | dict(programs or {})
    frames = render(tracks, font, chosen, sample_rate)
    path = write_wav(frames, wav_path, sample_rate)
    return Rendered(path, font, len(frames) / sample_rate, count)
