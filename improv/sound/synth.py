"""The built-in General MIDI synthesizer: FluidSynth playing a SoundFont, live or offline.

`Synth.send` takes raw MIDI bytes exactly like an rtmidi `MidiOut.send_message`,
so the engine can hand the synth what it hands a port. FluidSynth renders in
its own native audio thread (no GIL on the audio path) to the system's audio
(PipeWire, PulseAudio, ALSA, JACK, CoreAudio, WASAPI, ...), or for tests into
memory (`audio_driver="memory"`, pulled with `Synth.read`) or a WAV file
(`audio_driver="file"`). `render` and `render_file` turn notes or a MIDI file
into 16-bit stereo audio and WAV files.

The FluidSynth library is loaded on first use (pyfluidsynth finds it), so the
rest of improv runs on machines that do not have it.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import operator
import threading
import wave
import weakref
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Self

import numpy as np

from improv.errors import SynthError
from improv.music.events import Note
from improv.sound.soundfont import check_soundfont, find_soundfont

PLAYER_PROGRAM = 0  # General MIDI programs numbered from 0: Acoustic Grand Piano
IMPROV_PROGRAM = 4  # Electric Piano 1
PLAYER_CHANNEL = 0
IMPROV_CHANNEL = 1
DRUM_CHANNEL = 9  # General MIDI percussion
DEFAULT_SAMPLE_RATE = 44100
DEFAULT_BUFFER_FRAMES = 512  # 11.6 ms at 44.1 kHz
DEFAULT_GAIN = 0.5  # FluidSynth's 0.2 is quiet for one player; 10 fortissimo notes still peak below full scale
BUFFER_FRAMES_RANGE = (128, 8192)
SAMPLE_RATE_RANGE = (8000, 96000)
MEMORY_DRIVER = "memory"
# Tried in order when no driver is named; JACK only when asked (it may start a server).
AUTO_DRIVERS = ("pipewire", "pulseaudio", "alsa", "coreaudio", "wasapi", "dsound", "portaudio", "waveout")
MAX_TAIL_S = 10.0
SILENT_SAMPLE = 2  # |int16 sample| at or below this counts as silence (dither)

LIBRARY_HINT = (
    "install it with 'sudo apt install libfluidsynth3' (Debian/Ubuntu), 'brew install fluid-synth' (macOS) "
    "or 'choco install fluidsynth' (Windows)"
)

NOTE_OFF, NOTE_ON, CONTROL_CHANGE, PROGRAM_CHANGE = 0x80, 0x90, 0xB0, 0xC0
SUSTAIN, ALL_SOUND_OFF, ALL_NOTES_OFF = 64, 120, 123
_FLUID_OK = 0
_FLUID_ERR = 1
_FLUID_LOG_LEVELS = 5  # PANIC, ERR, WARN, INFO, DBG

# improv's tracks in the files it writes: sessions (`s` in the TUI) and `improv generate`
# (the others, `player` and `primer`, are the player's).
IMPROV_TRACKS = ("improv", "continuation")


class _Library:
    """pyfluidsynth, plus the few C functions it does not wrap in every version, with quiet logging."""

    def __init__(self) -> None:
        try:
            # pyfluidsynth prints where it found the library when $CI is set.
            with contextlib.redirect_stdout(io.StringIO()):
                import fluidsynth
        except (ImportError, OSError):
            raise SynthError(f"the FluidSynth library is missing: {LIBRARY_HINT}") from None
        self.fluidsynth: Any = fluidsynth
        c = ctypes.CDLL(fluidsynth._fl._name)  # the same library; prototypes of our own
        vp, i = ctypes.c_void_p, ctypes.c_int
        self._c = c
        self.new_audio_driver = self._proto("new_fluid_audio_driver", vp, vp, vp)
        self.delete_audio_driver = self._proto("delete_fluid_audio_driver", None, vp)
        self.all_sounds_off = self._proto("fluid_synth_all_sounds_off", i, vp, i)
        self.active_voices = self._proto("fluid_synth_get_active_voice_count", i, vp)
        self.write_s16 = self._proto("fluid_synth_write_s16", i, vp, i, vp, i, i, vp, i, i)
        self.reverb_on = self._proto("fluid_synth_reverb_on", i, vp, i, i, optional=True)
        self.chorus_on = self._proto("fluid_synth_chorus_on", i, vp, i, i, optional=True)
        self.set_reverb_on = self._proto("fluid_synth_set_reverb_on", None, vp, i, optional=True)
        self.set_chorus_on = self._proto("fluid_synth_set_chorus_on", None, vp, i, optional=True)
        self.option_concat = self._proto("fluid_settings_option_concat", vp, vp, ctypes.c_char_p, ctypes.c_char_p,
                                         optional=True)
        self.free = self._proto("fluid_free", None, vp, optional=True)
        self.errors: deque[str] = deque(maxlen=8)
        self._log = ctypes.CFUNCTYPE(None, i, ctypes.c_char_p, vp)(self._record)
        set_log = self._proto("fluid_set_log_function", vp, i, vp, vp)
        for level in range(_FLUID_LOG_LEVELS):  # errors are kept for our messages; the rest is dropped
            set_log(level, ctypes.cast(self._log, vp) if level <= _FLUID_ERR else None, None)

    def _proto(self, name: str, restype: Any, *argtypes: Any, optional: bool = False) -> Any:
        function = getattr(self._c, name, None)
        if function is None:
            if optional:
                return None
            raise SynthError(f"the FluidSynth library is too old (no {name}); FluidSynth 2 is needed: {LIBRARY_HINT}")
        function.restype = restype
        function.argtypes = list(argtypes)
        return function

    def _record(self, level: int, message: bytes | None, data: object) -> None:
        self.errors.append((message or b"").decode("utf-8", "replace").strip())

    def take_error(self) -> str:
        """The first error FluidSynth logged since the last call (one line; later ones tend to be consequences)."""
        text = self.errors[0] if self.errors else ""
        self.errors.clear()
        return " ".join(text.split())

    def options(self, settings: int, name: str) -> list[str] | None:
        """The values a string setting accepts (e.g. the audio drivers compiled in), if the library tells."""
        if self.option_concat is None:
            return None
        pointer = self.option_concat(settings, name.encode(), b",")
        if not pointer:
            return None
        try:
            text = ctypes.string_at(pointer).decode()
        finally:
            if self.free is not None:
                self.free(pointer)
        return [option.strip() for option in text.split(",") if option.strip()]

    def set_effects(self, synth: int, on: bool) -> None:
        if self.reverb_on is not None:
            self.reverb_on(synth, -1, int(on))
            self.chorus_on(synth, -1, int(on))
        elif self.set_reverb_on is not None:
            self.set_reverb_on(synth, int(on))
            self.set_chorus_on(synth, int(on))


_ALSA_ERROR_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                       ctypes.c_char_p)


@contextlib.contextmanager
def _quiet_alsa() -> Iterator[None]:
    """Keep alsa-lib from printing to stderr (over a terminal UI) while a driver tries to open ALSA."""
    try:
        alsa = ctypes.CDLL("libasound.so.2")
        set_handler = alsa.snd_lib_error_set_handler
    except (OSError, AttributeError):
        yield
        return
    set_handler.argtypes = [ctypes.c_void_p]
    handler = _ALSA_ERROR_HANDLER(lambda *args: None)
    set_handler(ctypes.cast(handler, ctypes.c_void_p))
    try:
        yield
    finally:
        set_handler(None)


_GLIB_LOG_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


@contextlib.contextmanager
def _quiet_glib() -> Iterator[None]:
    """Keep GLib from printing to stderr while FluidSynth's DLS loader (libinstpatch) rejects a bad file."""
    try:
        glib = ctypes.CDLL("libglib-2.0.so.0")
        set_default = glib.g_log_set_default_handler
    except (OSError, AttributeError):
        yield
        return
    set_default.restype = ctypes.c_void_p
    set_default.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    handler = _GLIB_LOG_HANDLER(lambda *args: None)
    previous = set_default(ctypes.cast(handler, ctypes.c_void_p), None)
    try:
        yield
    finally:
        set_default(previous, None)


_library_lock = threading.Lock()
_library_instance: _Library | None = None


def _library() -> _Library:
    global _library_instance
    with _library_lock:
        if _library_instance is None:
            _library_instance = _Library()
        return _library_instance


def fluidsynth_available() -> bool:
    """Whether the FluidSynth library can be loaded here."""
    try:
        _library()
    except SynthError:
        return False
    return True


def _check_int(value: object, name: str, lo: int, hi: int) -> int:
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise SynthError(f"{name} must be an integer {lo}-{hi}, got {value!r}") from None
    if not lo <= number <= hi:
        raise SynthError(f"{name} must be {lo}-{hi}, got {number}")
    return number


def buffer_periods(buffer_frames: int) -> tuple[int, int]:
    """(frames per period, periods) for a total output buffer: 4 periods when each holds 64+ frames, else 2."""
    periods = 4 if buffer_frames >= 256 else 2
    return buffer_frames // periods, periods


def buffer_latency_ms(buffer_frames: int, sample_rate: int = DEFAULT_SAMPLE_RATE) -> float:
    """The output latency a full buffer of `buffer_frames` implies."""
    period, periods = buffer_periods(buffer_frames)
    return 1000.0 * period * periods / sample_rate


def parse_message(data: Sequence[int]) -> tuple[int, int, int, int] | None:
    """(kind, channel, data1, data2) of a channel message, or None if the bytes are not a valid one."""
    try:
        size = len(data)
        if not 2 <= size <= 3:
            return None
        status = operator.index(data[0])
        data1 = operator.index(data[1])
        data2 = operator.index(data[2]) if size == 3 else 0
    except (TypeError, IndexError):
        return None
    if not 0x80 <= status <= 0xEF or not 0 <= data1 <= 127 or not 0 <= data2 <= 127:
        return None
    kind = status & 0xF0
    wanted = 2 if kind in (PROGRAM_CHANGE, 0xD0) else 3
    if size != wanted:
        return None
    return kind, status & 0x0F, data1, data2


def rechannel(data: Sequence[int], channel: int) -> list[int]:
    """The same channel message on another channel (0-15), e.g. the player's keys onto the player's program."""
    message = list(data)
    if message and 0x80 <= message[0] <= 0xEF:
        message[0] = (message[0] & 0xF0) | (channel & 0x0F)
    return message


class _Handles:
    """What a Synth owns, apart from the Synth object, so a finalizer can silence and free it once."""

    def __init__(self, library: _Library, synth: Any) -> None:
        self.library = library
        self.synth = synth
        self.driver: int | None = None
        self.lock = threading.RLock()
        self.closed = False

    def silence(self) -> None:
        for channel in range(16):
            self.library.all_sounds_off(self.synth.synth, channel)
            self.synth.cc(channel, SUSTAIN, 0)

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
        player_program = _check_int(player_program, "player program", 0, 127)
        improv_program = _check_int(improv_program, "improv program", 0, 127)
        self.player_channel = _check_int(player_channel, "player channel", 0, 15)
        self.improv_channel = _check_int(improv_channel, "improv channel", 0, 15)
        if self.player_channel == self.improv_channel:
            raise SynthError(f"the player and improv channels must differ, both are {self.player_channel}")
        buffer_frames = _check_int(buffer_frames, "audio buffer (frames)", *BUFFER_FRAMES_RANGE)
        self._sample_rate = _check_int(sample_rate, "sample rate (Hz)", *SAMPLE_RATE_RANGE)
        if not 0.0 <= float(gain) <= 10.0:
            raise SynthError(f"gain must be 0-10, got {gain}")
        self._period, self._periods = buffer_periods(buffer_frames)
        self._soundfont = check_soundfont(soundfont)
        self._effects = bool(effects)
        self._effects_stale = False  # effects muted by a panic, restored at the next note
        self._programs: dict[int, int] = {}

        library = _library()
        library.take_error()
        fluid = library.fluidsynth.Synth(gain=float(gain), samplerate=float(self._sample_rate), channels=16)
        self._handles = _Handles(library, fluid)
        self._finalizer = weakref.finalize(self, self._handles.close)
        try:
            fluid.setting("audio.period-size", self._period)
            fluid.setting("audio.periods", self._periods)
            if not self._effects:
                library.set_effects(fluid.synth, False)
            with _quiet_glib():
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
            with _quiet_alsa() if name == "alsa" else contextlib.nullcontext():
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
        channel = _check_int(channel, "channel", 0, 15)
        program = _check_int(program, "program", 0, 127)
        handles = self._handles
        with handles.lock:
            if handles.closed:
                raise SynthError("the synth is closed")
            bank = 128 if channel == DRUM_CHANNEL else 0
            if handles.synth.program_select(channel, self._sfid, bank, program) != _FLUID_OK:
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
            if kind == NOTE_ON and data2 > 0:
                if self._effects_stale:
                    self._restore_after_panic()
                return fluid.noteon(channel, data1, data2) == _FLUID_OK
            if kind in (NOTE_ON, NOTE_OFF):
                fluid.noteoff(channel, data1)  # FAILED only means the key was not sounding
                return True
            if kind == CONTROL_CHANGE and data1 in (SUSTAIN, ALL_SOUND_OFF, ALL_NOTES_OFF):
                if data1 == ALL_NOTES_OFF:
                    fluid.cc(channel, SUSTAIN, 0)
                return fluid.cc(channel, data1, data2) == _FLUID_OK
            if kind == PROGRAM_CHANGE:
                if fluid.program_change(channel, data1) != _FLUID_OK:
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


# --- offline rendering ---------------------------------------------------------


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
    melodic = [channel for channel in range(16) if channel != DRUM_CHANNEL]
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
            synth.set_program(channels[name], _check_int(chosen[name], f"program of track '{name}'", 0, 127))
        now = 0
        for frame, is_on, channel, pitch, velocity in events:
            if frame > now:
                chunks.append(synth.read(frame - now))
                now = frame
            synth.send([NOTE_ON | channel, pitch, velocity] if is_on else [NOTE_OFF | channel, pitch, 0])
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

    player_program = _check_int(player_program, "player program", 0, 127)
    improv_program = _check_int(improv_program, "improv program", 0, 127)
    sample_rate = _check_int(sample_rate, "sample rate (Hz)", *SAMPLE_RATE_RANGE)
    tracks = read_midi_tracks(midi_path)
    count = sum(len(notes) for notes in tracks.values())
    if count == 0:
        raise SynthError(f"{midi_path}: no notes to render")
    font = find_soundfont(soundfont, configured_soundfont)
    chosen = default_programs(list(tracks), player_program, improv_program) | dict(programs or {})
    frames = render(tracks, font, chosen, sample_rate)
    path = write_wav(frames, wav_path, sample_rate)
    return Rendered(path, font, len(frames) / sample_rate, count)
