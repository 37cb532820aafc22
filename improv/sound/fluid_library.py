"""The FluidSynth library: loaded on first use (pyfluidsynth finds it), its errors kept, its noise muted.

Loading it lazily lets the rest of improv run on machines that do not have it.
pyfluidsynth does not wrap every C function in every version; the few we need
get prototypes of our own here.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

from improv.errors import SynthError

LIBRARY_HINT = (
    "install it with 'sudo apt install libfluidsynth3' (Debian/Ubuntu), 'brew install fluid-synth' (macOS) "
    "or 'choco install fluidsynth' (Windows)"
)
FLUID_OK = 0
_FLUID_ERR = 1
_FLUID_LOG_LEVELS = 5  # PANIC, ERR, WARN, INFO, DBG


class Library:
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
def quiet_alsa() -> Iterator[None]:
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
def quiet_glib() -> Iterator[None]:
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
_library_instance: Library | None = None


def load_library() -> Library:
    """The library, loaded once per process (SynthError, saying how to install it, where it is missing)."""
    global _library_instance
    with _library_lock:
        if _library_instance is None:
            _library_instance = Library()
        return _library_instance


def fluidsynth_available() -> bool:
    """Whether the FluidSynth library can be loaded here."""
    try:
        load_library()
    except SynthError:
        return False
    return True
