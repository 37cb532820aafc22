"""`Synth`: FluidSynth playing a SoundFont from raw MIDI messages, live or into memory.

`Synth.send` takes raw MIDI bytes exactly like an rtmidi `MidiOut.send_message`,
so the engine can hand the synth what it hands a port. FluidSynth renders in
its own native audio thread (no GIL on the audio path) to the system's audio
(PipeWire, PulseAudio, ALSA, JACK, CoreAudio, WASAPI, ...), or for tests and
offline rendering into memory (`audio_driver="memory"`, pulled with
`Synth.read`) or a WAV file (`audio_driver="file"`).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from improv.errors import SynthError
from improv.midi import status
from improv.sound.channels import (
    DRUM_CHANNEL,
    IMPROV_CHANNEL,
    IMPROV_PROGRAM,
    PLAYER_CHANNEL,
    PLAYER_PROGRAM,
    check_int,
    parse_message,
)
from improv.sound.fluid_library import FLUID_OK, Library, load_library, quiet_alsa, quiet_glib
from improv.sound.soundfont import check_soundfont

DEFAULT_SAMPLE_RATE = 44100
DEFAULT_BUFFER_FRAMES = 512  # 11.6 ms at 44.1 kHz
DEFAULT_GAIN = 0.5  # FluidSynth's 0.2 is quiet for one player; 10 fortissimo notes still peak below full scale
BUFFER_FRAMES_RANGE = (128, 8192)
SAMPLE_RATE_RANGE = (8000, 96000)
MEMORY_DRIVER = "memory"
# Tried in order when no driver is named; JACK only when asked (it may start a server).
AUTO_DRIVERS = ("pipewire", "pulseaudio", "alsa", "coreaudio", "wasapi", "dsound", "portaudio", "waveout")
_CONTROLLERS = (status.SUSTAIN_PEDAL, status.ALL_SOUND_OFF, status.ALL_NOTES_OFF)  # the ones the synth obeys


def buffer_periods(buffer_frames: int) -> tuple[int, int]:
    """(frames per period, periods) for a total output buffer: 4 periods when each holds 64+ frames, else 2."""
    periods = 4 if buffer_frames >= 256 else 2
    return buffer_frames // periods, periods


def buffer_latency_ms(buffer_frames: int, sample_rate: int = DEFAULT_SAMPLE_RATE) -> float:
    """The output latency a full buffer of `buffer_frames` implies."""
    period, periods = buffer_periods(buffer_frames)
    return 1000.0 * period * periods / sample_rate


class _Handles:
    """What a Synth owns, apart from the Synth object, so a finalizer can silence and free it once."""

    def __init__(self, library: Library, synth: Any) -> None:
        self.library = library
        self.synth = synth
        self.driver: int | None = None
        self.lock = threading.RLock()
        self.closed = False

    def silence(self) -> None:
        for channel in range(status.CHANNELS):
            self.library.all_sounds_off(self.synth.synth, channel)
            self.synth.cc(channel, status.SUSTAIN_PEDAL, 0)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.silence()
            driver, self.driver = self.driver, None
            if driver:
                self.library.delete_audio_driver(driver)  # joins FluidSynth's audio thread
            self.synth.delete()


class Synth:
    """A SoundFont synthesizer that plays raw MIDI messages, thread-safe, silenced on close.

    The player's part sounds on `player_channel` with `player_program`, the
    improviser's on `improv_channel` with `improv_program` (General MIDI
    programs numbered 0-127: 0 piano, 4 electric piano, 73 flute); other
    channels start on program 0, channel 10 (index 9) on drums.

    `audio_driver`: None tries the system's usual outputs in turn (see
    `AUTO_DRIVERS`); a FluidSynth driver name (`pulseaudio`, `pipewire`,
    `alsa`, `jack`, `coreaudio`, `wasapi`, `dsound`, `file`, ...) uses that
    one; `"memory"` opens no device: the caller pulls frames with `read`.
    `buffer_frames` is the whole output buffer (FluidSynth periods x period
    size); `latency_ms` is what it implies (JACK uses the server's buffer).
    """

    def __init__(
        self,
        soundfont: str | Path,
        *,
        player_program: int = PLAYER_PROGRAM,
        improv_program: int = IMPROV_PROGRAM,
        player_channel: int = PLAYER_CHANNEL,
        improv_channel: int = IMPROV_CHANNEL,
        audio_driver: str | None = None,
        buffer_frames: int = DEFAULT_BUFFER_FRAMES,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        gain: float = DEFAULT_GAIN,
        audio_file: str | Path | None = None,
        effects: bool = True,
    ) -> None:
        player_program = check_int(player_program, "player program", 0, 127)
        improv_program = check_int(improv_program, "improv program", 0, 127)
        self.player_channel = check_int(player_channel, "player channel", 0, 15)
        self.improv_channel = check_int(improv_channel, "improv channel", 0, 15)
        if self.player_channel == self.improv_channel:
            raise SynthError(f"the player and improv channels must differ, both are {self.player_channel}")
        buffer_frames = check_int(buffer_frames, "audio buffer (frames)", *BUFFER_FRAMES_RANGE)
        self._sample_rate = check_int(sample_rate, "sample rate (Hz)", *SAMPLE_RATE_RANGE)
        if not 0.0 <= float(gain) <= 10.0:
            raise SynthError(f"gain must be 0-10, got {gain}")
        self._period, self._periods = buffer_periods(buffer_frames)
        self._soundfont = check_soundfont(soundfont)
        self._effects = bool(effects)
        self._effects_stale = False  # effects muted by a panic, restored at the next note
        self._programs: dict[int, int] = {}

        library = load_library()
        library.take_error()
        fluid = library.fluidsynth.Synth(gain=float(gain), samplerate=float(self._sample_rate),
                                           channels=status.CHANNELS)
        self._handles = _Handles(library, fluid)
        self._finalizer = weakref.finalize(self, self._handles.close)
        try:
            fluid.setting("audio.period-size", self._period)
            fluid.setting("audio.periods", self._periods)
            if not self._effects:
                library.set_effects(fluid.synth, False)
            with quiet_glib():
                self._sfid = fluid.sfload(str(self._soundfont), 1)
            if self._sfid < 0:
                reason = library.take_error() or "FluidSynth cannot load it"
                raise SynthError(f"{self._soundfont}: not a usable SoundFont: {reason}")
            self.set_program(self.player_channel, player_program)
            self.set_program(self.improv_channel, improv_program)
            self._driver_name = self._start_driver(audio_driver, audio_file)
        except BaseException:
            self.close()
            raise

    # --- set-up ------------------------------------------------------------

    def _start_driver(self, audio_driver: str | None, audio_file: str | Path | None) -> str:
        if audio_driver == MEMORY_DRIVER:
            return MEMORY_DRIVER
        handles, library = self._handles, self._handles.library
        fluid = handles.synth
        available = library.options(fluid.settings, "audio.driver")
        listed = ", ".join(available) if available else "see FluidSynth's documentation"
        if audio_driver:
            if available is not None and audio_driver not in available:
                raise SynthError(f"audio driver '{audio_driver}' is not in this FluidSynth; available: {listed}")
            names = [audio_driver]
        else:
            names = [name for name in AUTO_DRIVERS if available is None or name in available]
        if "file" in names:
            if audio_file is None:
                raise SynthError("the 'file' audio driver needs a file to write (audio_file)")
            fluid.setting("audio.file.name", str(audio_file))
            fluid.setting("audio.file.type", "wav")
        failures = []
        for name in names:
            fluid.setting("audio.driver", name)
            library.take_error()
            with quiet_alsa() if name == "alsa" else contextlib.nullcontext():
                driver = library.new_audio_driver(fluid.settings, fluid.synth)
            if driver:
                handles.driver = driver
                return name
            failures.append(f"{name}: {library.take_error() or 'failed to start'}")
        if audio_driver:
            raise SynthError(f"audio driver '{audio_driver}' cannot start ({failures[0]}); try another, available: {listed}")
        raise SynthError(f"no audio output could start ({'; '.join(failures) or 'none to try'}); "
                         f"choose an audio driver, available: {listed}")

    # --- properties ----------------------------------------------------------

    @property
    def soundfont(self) -> Path:
        return self._soundfont

    @property
    def audio_driver(self) -> str:
        """The driver in use: a FluidSynth driver name, or "memory"."""
        return self._driver_name

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def buffer_frames(self) -> int:
        """The whole output buffer in frames (periods x period size)."""
        return self._period * self._periods

    @property
    def latency_ms(self) -> float:
        """The output latency the buffer implies (0 for the memory driver, which has no device)."""
        if self._driver_name == MEMORY_DRIVER:
            return 0.0
        return 1000.0 * self.buffer_frames / self._sample_rate

    @property
    def programs(self) -> dict[int, int]:
        """The program of each channel set so far (player's, improv's, and program changes)."""
        with self._handles.lock:
            return dict(self._programs)

    @property
    def closed(self) -> bool:
        return self._handles.closed

    # --- playing -------------------------------------------------------------

    def set_program(self, channel: int, program: int) -> None:
        """Play `channel` (0-15) with General MIDI `program` (0-127, bank 0; drum kit on channel 9)."""
        channel = check_int(channel, "channel", 0, 15)
        program = check_int(program, "program", 0, 127)
        handles = self._handles
        with handles.lock:
            if handles.closed:
                raise SynthError("the synth is closed")
            bank = 128 if channel == DRUM_CHANNEL else 0
            if handles.synth.program_select(channel, self._sfid, bank, program) != FLUID_OK:
                handles.library.take_error()
                raise SynthError(f"{self._soundfont}: no program {program} in bank {bank}")
            self._programs[channel] = program

    def send(self, data: Sequence[int]) -> bool:
        """Play one raw MIDI message, as `MidiOut.send_message` would send it; True if the synth acted on it.

        Note on/off (a note-on with velocity 0 is a note-off), CC 64 sustain,
        CC 120 all sound off, CC 123 all notes off (which also lifts the
        sustain pedal, so a panic never leaves notes ringing) and program
        change. Anything else, malformed bytes included, is ignored: False,
        never an exception.
        """
        message = parse_message(data)
        if message is None:
            return False
        kind, channel, data1, data2 = message
        handles = self._handles
        fluid = handles.synth
        with handles.lock:
            if handles.closed:
                return False
            if kind == status.NOTE_ON and data2 > 0:
                if self._effects_stale:
                    self._restore_after_panic()
                return fluid.noteon(channel, data1, data2) == FLUID_OK
            if kind in (status.NOTE_ON, status.NOTE_OFF):
                fluid.noteoff(channel, data1)  # FAILED only means the key was not sounding
                return True
            if kind == status.CONTROL_CHANGE and data1 in _CONTROLLERS:
                if data1 == status.ALL_NOTES_OFF:
                    fluid.cc(channel, status.SUSTAIN_PEDAL, 0)
                return fluid.cc(channel, data1, data2) == FLUID_OK
            if kind == status.PROGRAM_CHANGE:
                if fluid.program_change(channel, data1) != FLUID_OK:
                    handles.library.take_error()
                    return False
                self._programs[channel] = data1
                return True
        return False

    def all_notes_off(self) -> None:
        """Panic: silence now, release tails, sustain pedals and reverb/chorus tails included."""
        handles = self._handles
        with handles.lock:
            if handles.closed:
                return
            handles.silence()
            if self._effects:
                # Reverb and chorus keep ringing after the voices stop: mute them until the next note.
                handles.library.set_effects(handles.synth.synth, False)
                self._effects_stale = True

    def _restore_after_panic(self) -> None:
        # Resetting clears the effects' buffers (they were muted meanwhile), then programs come back.
        handles = self._handles
        handles.synth.system_reset()
        for channel, program in self._programs.items():
            handles.synth.program_change(channel, program)
        handles.library.set_effects(handles.synth.synth, True)
        self._effects_stale = False

    def read(self, frames: int) -> np.ndarray:
        """The next `frames` frames as int16, shape (frames, 2); only with the memory driver."""
        if self._driver_name != MEMORY_DRIVER:
            raise RuntimeError(f"read() needs audio_driver='memory'; this synth plays to '{self._driver_name}'")
        out = np.zeros((max(0, int(frames)), 2), dtype=np.int16)
        handles = self._handles
        with handles.lock:
            if not handles.closed and len(out):
                pointer = out.ctypes.data
                handles.library.write_s16(handles.synth.synth, len(out), pointer, 0, 2, pointer, 1, 2)
        return out

    def active_voices(self) -> int:
        """How many voices sound (a note may use several); 0 once every release has ended."""
        handles = self._handles
        with handles.lock:
            if handles.closed:
                return 0
            return int(handles.library.active_voices(handles.synth.synth))

    def close(self) -> None:
        """Silence every note, stop the audio output and free the synth; safe to call again."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self._driver_name}, {self.latency_ms:.1f} ms"
        return f"Synth({str(self._soundfont)!r}, {state})"
