"""The built-in synthesizer: real FluidSynth, a real SoundFont, audio measured with numpy.

Levels are RMS of int16 audio scaled to [-1, 1] in 50 ms windows. With the test
SoundFont (TimGM6mb) a single piano note at velocity 100 measures about 0.02
and the dither floor of silence about 0.00003, so LOUD and QUIET sit well
inside that range.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import improv
from improv import cli
from improv.errors import SynthError
from improv.sound.soundfont import find_soundfont
from improv.sound.synth import (
    DEFAULT_BUFFER_FRAMES,
    IMPROV_CHANNEL,
    MEMORY_DRIVER,
    PLAYER_CHANNEL,
    Synth,
    buffer_latency_ms,
    parse_message,
    rechannel,
    render,
    render_file,
)

SR = 44100
WINDOW_S = 0.05
LOUD = 0.005
QUIET = 0.0005

PHRASE = {
    "player": [improv.Note(60, 100, 0.0, 0.5), improv.Note(64, 100, 0.5, 0.5)],
    "improv": [improv.Note(67, 90, 1.0, 0.5)],
}
PHRASE_END_S = 1.5
SCALE = {"player": [improv.Note(p, 100, i * 0.25, 0.25) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72])]}


def window_rms(frames: np.ndarray, window_s: float = WINDOW_S, sample_rate: int = SR) -> np.ndarray:
    audio = frames.astype(np.float64) / 32768.0
    n = int(window_s * sample_rate)
    count = len(audio) // n
    return np.sqrt((audio[: count * n].reshape(count, n * audio.shape[1]) ** 2).mean(axis=1))


def rms(frames: np.ndarray) -> float:
    return float(np.sqrt(np.mean((frames.astype(np.float64) / 32768.0) ** 2))) if len(frames) else 0.0


def mean_spectrum(frames: np.ndarray, n: int = 4096) -> np.ndarray:
    """Average magnitude spectrum (Hann windows, half overlap), scaled to sum 1."""
    mono = frames.astype(np.float64).mean(axis=1) / 32768.0
    spectra = [np.abs(np.fft.rfft(mono[i:i + n] * np.hanning(n))) for i in range(0, len(mono) - n, n // 2)]
    mean = np.mean(spectra, axis=0)
    return mean / mean.sum()


def centroid_hz(spectrum: np.ndarray, n: int = 4096) -> float:
    return float((spectrum * np.fft.rfftfreq(n, 1 / SR)).sum())


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as file:
        assert file.getsampwidth() == 2, "16-bit"
        channels = file.getnchannels()
        data = np.frombuffer(file.readframes(file.getnframes()), dtype="<i2")
        return data.reshape(-1, channels), file.getframerate()


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {err!r}"
    assert "Traceback" not in err
    assert lines[0].startswith("improv: ")
    return lines[0]


# --- offline rendering -----------------------------------------------------------


def test_a_session_file_renders_loud_while_notes_sound_and_silent_after_the_release_tail(
    soundfont: Path, tmp_path: Path
) -> None:
    session = tmp_path / "session.mid"
    improv.write_midi(PHRASE, session, bpm=96)
    rendered = render_file(session, tmp_path / "session.wav", soundfont)
    frames, rate = read_wav(rendered.wav_path)
    assert rate == SR and frames.shape[1] == 2
    assert rendered.notes == 3 and rendered.soundfont == soundfont
    levels = window_rms(frames)
    sounding = levels[1:int(PHRASE_END_S / WINDOW_S) - 1]  # every window while some note is held
    assert sounding.min() > LOUD, f"quietest window while notes sound: {sounding.min():.5f}"
    # The file goes on past the last note-off (the release tail), then ends in silence.
    assert len(frames) / SR > PHRASE_END_S + 0.1
    loud_until_s = (np.nonzero(levels > QUIET)[0].max() + 1) * WINDOW_S
    assert PHRASE_END_S < loud_until_s < PHRASE_END_S + 2.0, f"tail above {QUIET} until {loud_until_s:.2f} s"
    assert window_rms(frames[-int(0.2 * SR):]).max() < QUIET


def test_two_programs_give_different_spectra_and_one_program_the_same(soundfont: Path) -> None:
    piano = mean_spectrum(render(SCALE, soundfont, {"player": 0})[: 2 * SR])
    again = mean_spectrum(render(SCALE, soundfont, {"player": 0})[: 2 * SR])
    epiano = mean_spectrum(render(SCALE, soundfont, {"player": 4})[: 2 * SR])
    flute = mean_spectrum(render(SCALE, soundfont, {"player": 73})[: 2 * SR])
    assert np.abs(piano - again).sum() < 0.05  # the measure is stable for one sound...
    assert np.abs(piano - epiano).sum() > 0.3  # ...and tells the sounds apart (L1 of unit spectra, 0-2)
    assert np.abs(piano - flute).sum() > 0.2
    assert abs(centroid_hz(epiano) / centroid_hz(piano) - 1) > 0.2, (centroid_hz(piano), centroid_hz(epiano))


def test_render_plays_each_track_on_its_own_program_and_drums_on_channel_10(soundfont: Path) -> None:
    drums = {"beat": [improv.Note(36, 110, 0.0, 0.2, channel=9), improv.Note(38, 110, 0.3, 0.2, channel=9)]}
    assert rms(render(drums, soundfont)[: int(0.5 * SR)]) > LOUD
    nothing = render({"player": []}, soundfont, max_tail_s=0.1)
    assert len(nothing) <= int(0.1 * SR) and rms(nothing) < QUIET


# --- live, with the memory driver --------------------------------------------------------


def test_notes_sent_like_midi_sound_and_a_panic_silences_them_within_the_release_time(soundfont: Path) -> None:
    with Synth(soundfont, audio_driver=MEMORY_DRIVER) as synth:
        assert synth.audio_driver == MEMORY_DRIVER and synth.latency_ms == 0.0
        assert synth.programs == {PLAYER_CHANNEL: 0, IMPROV_CHANNEL: 4}
        assert synth.send([0x90 | PLAYER_CHANNEL, 60, 100])  # the player's phrase
        assert synth.send((0x90 | IMPROV_CHANNEL, 67, 90))  # improv's reply
        assert synth.send([0xB0 | PLAYER_CHANNEL, 64, 127])  # sustain pedal down
        assert rms(synth.read(int(0.3 * SR))) > LOUD
        assert synth.active_voices() > 0
        synth.all_notes_off()
        after = window_rms(synth.read(int(0.3 * SR)), window_s=0.01)
        assert after[2:].max() < QUIET / 5, f"10 ms levels after panic: {np.round(after, 5)}"  # silent from 20 ms on
        assert synth.active_voices() == 0
        # The next note sounds as before, without the old reverb tail coming back.
        assert synth.send([0x90 | IMPROV_CHANNEL, 72, 90])
        assert rms(synth.read(int(0.2 * SR))) > LOUD


def test_note_off_sustain_and_all_notes_off_behave_like_a_synth(soundfont: Path) -> None:
    def level_after(*messages: list[int], hold_s: float = 0.4) -> float:
        with Synth(soundfont, audio_driver=MEMORY_DRIVER, effects=False) as synth:
            synth.send([0x90, 60, 100])
            synth.read(int(0.1 * SR))
            for message in messages:
                assert synth.send(message), message
            return rms(synth.read(int(hold_s * SR))[-int(0.1 * SR):])

    held = level_after()
    assert held > LOUD
    assert level_after([0x80, 60, 0]) < QUIET  # note-off: released within 0.3 s
    assert level_after([0x90, 60, 0]) < QUIET  # velocity-0 note-on is a note-off
    assert level_after([0xB0, 64, 127], [0x80, 60, 64]) > LOUD  # the pedal holds it
    assert level_after([0xB0, 64, 127], [0xB0, 123, 0]) < QUIET  # all notes off lifts the pedal too
    assert level_after([0xB0, 120, 0], hold_s=0.12) < QUIET  # all sound off: silent from 20 ms on


def test_program_change_and_anything_else_never_raises(soundfont: Path) -> None:
    with Synth(soundfont, audio_driver=MEMORY_DRIVER) as synth:
        assert synth.send([0xC0 | IMPROV_CHANNEL, 73])
        assert synth.programs[IMPROV_CHANNEL] == 73
        ignored = [[], [0x90], [0x90, 60], [0x90, 60, 100, 1], [0x90, 128, 1], [0x90, 60, 128], [0xF8], [0xF0, 1, 0xF7],
                   [0xB0, 1, 64], [0xB0, 7, 100], [0xE0, 0, 64], [0x40, 60, 100], [0x90, 60.0, 100], "abc", None, [-1, 2, 3]]
        for message in ignored:
            assert synth.send(message) is False, message  # type: ignore[arg-type]
        assert rms(synth.read(int(0.1 * SR))) < QUIET
    assert synth.send([0x90, 60, 100]) is False  # closed: ignored too
    assert parse_message([0x93, 60, 0]) == (0x90, 3, 60, 0)
    assert rechannel([0x93, 60, 100], 1) == [0x91, 60, 100] and rechannel([0xF8], 1) == [0xF8]


def test_sends_from_one_thread_and_panics_from_another(soundfont: Path) -> None:
    synth = Synth(soundfont, audio_driver=MEMORY_DRIVER)
    stop = threading.Event()

    def engine() -> list[bool]:
        sent, pitch = [], 40
        while not stop.is_set():
            sent.append(synth.send([0x91, pitch, 80]))
            synth.send([0x81, pitch, 0])
            pitch = 40 + (pitch + 7) % 50
        return sent

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(engine)
        try:
            for _ in range(50):
                synth.all_notes_off()
                synth.read(256)
            synth.close()  # while the engine still sends: its sends become no-ops
            time.sleep(0.01)
        finally:
            stop.set()
        sent = running.result(timeout=5)  # re-raises anything the engine thread raised
    assert any(sent) and sent[-1] is False
    synth.close()  # again: nothing happens


def test_the_file_driver_plays_in_real_time_through_fluidsynths_audio_thread(soundfont: Path, tmp_path: Path) -> None:
    out = tmp_path / "live.wav"
    synth = Synth(soundfont, audio_driver="file", audio_file=out)
    assert synth.audio_driver == "file"
    assert synth.buffer_frames == DEFAULT_BUFFER_FRAMES
    assert synth.latency_ms == pytest.approx(buffer_latency_ms(DEFAULT_BUFFER_FRAMES)) == pytest.approx(11.61, abs=0.01)
    synth.send([0x90, 60, 110])
    time.sleep(0.4)
    synth.all_notes_off()
    time.sleep(0.3)
    synth.close()
    frames, rate = read_wav(out)
    assert rate == SR
    levels = window_rms(frames)
    assert levels.max() > LOUD
    assert levels[-3:].max() < QUIET, np.round(levels, 5)  # silent well before it closed


# --- errors ------------------------------------------------------------------------------


def test_missing_soundfonts_are_one_line_errors_that_say_how_to_get_one(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.sf2"
    with pytest.raises(SynthError, match="nowhere.sf2: no such SoundFont file") as given:
        find_soundfont(missing)
    with pytest.raises(SynthError, match="config") as configured:
        find_soundfont(None, str(missing))
    with pytest.raises(SynthError, match="no SoundFont found") as none:
        find_soundfont(None, locations=[str(tmp_path / "*.sf2")])
    for error in (given, configured, none):
        assert "\n" not in str(error.value)
    if sys.platform.startswith("linux"):
        assert "sudo apt install" in str(none.value)


def test_the_search_skips_broken_files_and_finds_a_soundfont(soundfont: Path, tmp_path: Path) -> None:
    (tmp_path / "a-broken.sf2").write_text("not a soundfont")
    (tmp_path / "b-good.sf2").symlink_to(soundfont)
    assert find_soundfont(None, locations=[str(tmp_path / "*.sf2")]) == tmp_path / "b-good.sf2"
    assert find_soundfont(str(soundfont), "/ignored/when/given.sf2") == soundfont


@pytest.mark.parametrize("kind", ["text", "truncated", "garbage", "directory"])
def test_an_unusable_soundfont_is_a_one_line_error_naming_it(
    kind: str, soundfont: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / f"{kind}.sf2"
    if kind == "text":
        bad.write_text("shopping list\n")
    elif kind == "truncated":
        bad.write_bytes(soundfont.read_bytes()[:100_000])
    elif kind == "garbage":  # a valid header over nonsense: only FluidSynth itself can tell
        body = b"sfbk" + bytes(range(256)) * 40
        bad.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)
    else:
        bad.mkdir()
    with pytest.raises(SynthError) as error:
        Synth(bad, audio_driver=MEMORY_DRIVER)
    assert str(bad) in str(error.value) and "\n" not in str(error.value)
    assert capfd.readouterr().err == ""  # FluidSynth and its loaders printed nothing


def test_bad_settings_are_one_line_errors(soundfont: Path) -> None:
    for kwargs, message in [
        ({"player_program": 128}, "player program must be 0-127"),
        ({"improv_channel": PLAYER_CHANNEL}, "channels must differ"),
        ({"buffer_frames": 16}, "audio buffer"),
        ({"sample_rate": 1000}, "sample rate"),
        ({"audio_driver": "no-such-driver"}, "audio driver 'no-such-driver' is not in this FluidSynth; available: .*file"),
        ({"audio_driver": "file"}, "needs a file"),
    ]:
        with pytest.raises(SynthError, match=message):
            Synth(soundfont, **kwargs)  # type: ignore[arg-type]


# --- improv render -----------------------------------------------------------------------


def test_improv_render_writes_a_wav(soundfont: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    session = tmp_path / "session.mid"
    improv.write_midi(PHRASE, session)
    out = tmp_path / "out.wav"
    argv = ["render", str(session), "-o", str(out), "--soundfont", str(soundfont),
            "--player-program", "73", "--improv-program", "0", "--sample-rate", "22050"]
    assert cli.main(argv) == 0
    assert f"wrote {out}: 3 notes" in capsys.readouterr().out
    frames, rate = read_wav(out)
    assert rate == 22050 and rms(frames) > LOUD
    assert cli.main(["render", str(session), "--soundfont", str(soundfont)]) == 0
    assert session.with_suffix(".wav").is_file()  # -o defaults to the MIDI file's name


@pytest.mark.parametrize("case", ["missing midi", "corrupt midi", "no notes", "missing soundfont",
                                  "unreadable soundfont", "bad program", "unwritable wav"])
def test_improv_render_bad_input_exits_2_with_one_line(
    case: str, soundfont: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    session = tmp_path / "session.mid"
    improv.write_midi(PHRASE, session)
    midi, font, extra = str(session), str(soundfont), []
    if case == "missing midi":
        midi = str(tmp_path / "gone.mid")
    elif case == "corrupt midi":
        (tmp_path / "bad.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00")
        midi = str(tmp_path / "bad.mid")
    elif case == "no notes":
        improv.write_midi({"player": []}, tmp_path / "empty.mid")
        midi = str(tmp_path / "empty.mid")
    elif case == "missing soundfont":
        font = str(tmp_path / "gone.sf2")
    elif case == "unreadable soundfont":
        (tmp_path / "bad.sf2").write_text("hello")
        font = str(tmp_path / "bad.sf2")
    elif case == "bad program":
        extra = ["--improv-program", "200"]
    else:
        extra = ["-o", str(tmp_path / "no-such-dir" / "out.wav")]
    assert cli.main(["render", midi, "--soundfont", font, *extra]) == 2
    captured = capfd.readouterr()
    one_line_error(captured.err)
    assert captured.out == ""


def test_improv_render_from_the_shell_has_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sf2"
    bad.write_text("hello")
    done = subprocess.run([sys.executable, "-m", "improv", "render", str(tmp_path / "x.mid"), "--soundfont", str(bad)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert one_line_error(done.stderr) == f"improv: {tmp_path / 'x.mid'}: cannot read MIDI file: no such file"
