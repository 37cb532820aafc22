"""A live session: model + ports + engine + controls, and the exit signals that close it.

`LiveSession` wires the parts; whatever ends it (normal exit, Ctrl-C,
SIGTERM, an exception in any thread) goes through `close`, which stops the
engine and releases every note before the ports close.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import os
import queue
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from improv import config as config_mod
from improv.controls import actions as controls_mod
from improv.controls.control_map import ControlMap
from improv.live.ableton_link import link_settings
from improv.live.clock import parse_quantize
from improv.live.notice import SLOW_START, SLOW_START_S, notice_if_slow
from improv.live.planner import PlanSettings
from improv.live.engine import (
    PLAYER_TAGS,
    Engine,
    EngineSettings,
)
from improv.errors import ConfigError, ImprovError, PortError
from improv.midi.ports import (
    DEFAULT_CLIENT,
    MidiInput,
    MidiOutput,
    PortWatcher,
    Watchable,
    list_ports,
    open_input,
    open_output,
)
from improv.sound.channels import rechannel

DEFAULT_GAP_MS = 500
# Closing a JACK client can stall, for seconds or for good, while the server waits on another
# client (seen here once in 800 test runs). The command line's sessions, whose notes are off by
# then, end the process anyway after this long.
CLOSE_STALL_EXIT_S = 2.0
ALL_NOTES_OFF = 123
ALL_SOUND_OFF = 120
_Port = TypeVar("_Port", MidiInput, MidiOutput)


def settings_from(args: argparse.Namespace, config: config_mod.Config) -> EngineSettings:
    """Command line over config file over defaults."""
    from improv.model import sampling
    from improv.model.temperature import check_temperature

    if not 1 <= args.out_channel <= 16:
        raise ConfigError(f"--out-channel must be 1-16, got {args.out_channel}")
    gap_ms = args.gap if args.gap is not None else config.gap_ms
    if not gap_ms > 0:
        raise ConfigError(f"--gap must be > 0 ms, got {gap_ms}")
    reply_notes = args.reply_notes if args.reply_notes is not None else config.reply_notes
    if reply_notes < 1:
        raise ConfigError(f"--reply-notes must be >= 1, got {reply_notes}")
    margin = args.register_margin if args.register_margin is not None else config.register_margin
    chord_margin = args.chord_margin if args.chord_margin is not None else config.chord_margin
    seed_events = args.seed_events if args.seed_events is not None else config.seed_events
    if not 1 <= seed_events <= config_mod.MAX_SEED_EVENTS:
        raise ConfigError(f"--seed-events must be 1-{config_mod.MAX_SEED_EVENTS}, got {seed_events}")
    if args.reply_seconds is not None and not args.reply_seconds > 0:
        raise ConfigError(f"--reply-seconds must be > 0, got {args.reply_seconds}")
    temperature = check_temperature(args.temperature if args.temperature is not None else config.temperature)
    pitch_range = sampling.parse_range(args.pitch_range)
    key = sampling.parse_key(args.key) if args.key else None
    try:
        quantize = parse_quantize(args.quantize)
    except ValueError as error:
        raise ConfigError(f"--quantize: {error}") from None
    link_tempo, link_quantum = link_settings(args, config)
    try:  # EngineSettings checks the rest itself (follow, sync and clock out), naming the option
        return EngineSettings(
            mode=args.mode or config.mode,
            gap_s=gap_ms / 1000,
            reply_notes=reply_notes,
            reply_seconds=args.reply_seconds,
            temperature=temperature,
            out_channel=args.out_channel - 1,
            thru=args.thru,
            random_seed=args.random_seed,
            seed_events=seed_events,
            register_margin=margin,
            chord_margin=chord_margin,
            pitch_range=pitch_range,
            key=key,
            follow=args.follow,
            sync=args.sync,
            clock_out_bpm=args.clock_out,
            quantize=quantize,
            reply_on=args.reply_on,
            plan=plan_settings_from(args, config),
            link_tempo_bpm=link_tempo,
            link_quantum=link_quantum,
        )
    except ValueError as error:
        raise ConfigError(f"--{error}") from None


def plan_settings_from(args: argparse.Namespace, config: config_mod.Config) -> PlanSettings | None:
    """The answer planner's margins: command line over config file; None when it is off."""
    if not (args.plan if getattr(args, "plan", None) is not None else config.plan):
        return None
    values = {}
    for name in ("register", "leap", "span", "pace", "chord", "length", "motif", "key", "quote", "repeat", "accent"):
        given = getattr(args, f"plan_{name}", None)
        values[name] = given if given is not None else getattr(config, f"plan_{name}")
    return PlanSettings(**values)


def control_map_from(args: argparse.Namespace, config: config_mod.Config) -> ControlMap:
    mapping = config.control_map()
    if getattr(args, "temp_cc", None) is not None:
        number = controls_mod.check_cc_number(args.temp_cc, "--temp-cc")
        mapping = mapping.with_mapping("temperature", controls_mod.Source.cc(number))
    return mapping


def api_from(args: argparse.Namespace) -> str | None:
    return args.api or os.environ.get("IMPROV_MIDI_API") or None


class LiveSession:
    """Model, ports and engine of one run; `close` is safe to call from anywhere, more than once.

    With `ports_optional` (the terminal UI), a port that cannot be opened is
    left out and its one-line reason kept in `problems`; the engine runs
    without it (what it sends is counted in `unsent`) until `switch_input` /
    `switch_output` opens one.
    """

    def __init__(self, args: argparse.Namespace, *, ports_optional: bool = False) -> None:
        from improv.model.shipped import resolve_model

        self.config_path = args.config
        self.config = config_mod.load_config(args.config)
        settings = settings_from(args, self.config)
        self.control_map = control_map_from(args, self.config)
        self._closed = threading.Event()
        self._silenced = False
        self._lock = threading.Lock()
        # None in a library or test; the command line sets CLOSE_STALL_EXIT_S (see there).
        self.exit_if_close_stalls_s: float | None = None
        self.output: MidiOutput | None = None
        self.input: MidiInput | None = None
        self.problems: list[str] = []
        self.unsent = 0
        self.api = api_from(args)
        with notice_if_slow(SLOW_START_S, SLOW_START):  # the engine compiles the step on its first event
            self.engine = Engine(resolve_model(args.model), self._send, settings, self.control_map)
        self.output = self._open_port(lambda: open_output(args.out_port, self.api), "output", ports_optional)
        try:
            self.input = self._open_port(lambda: open_input(args.in_port, self.api, self.engine.push), "input",
                                         ports_optional)
        except BaseException:
            if self.output is not None:
                self.output.close()
            raise
        self.messages: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.watcher = PortWatcher(self._ports(), self._port_changed)
        self.synth: Any = None
        self._synth_args = args
        if getattr(args, "synth", None) is not None:
            try:
                self.start_synth()
            except ImprovError as error:
                if not ports_optional:
                    self.close()
                    raise
                self.problems.append(f"no synth: {error}")

    # -- the built-in synth ------------------------------------------------------------

    def start_synth(self) -> str:
        """Sound through the built-in synth from now on; a one-line ImprovError if it cannot."""
        from improv.sound.soundfont import find_soundfont
        from improv.sound.synth import Synth

        if self.synth is None:
            args = self._synth_args
            soundfont = find_soundfont(getattr(args, "synth", None) or None, self.config.soundfont or None)
            self.synth = Synth(soundfont, player_program=getattr(args, "player_program", 0),
                               improv_program=getattr(args, "improv_program", 4),
                               audio_driver=getattr(args, "audio_driver", None),
                               buffer_frames=getattr(args, "audio_buffer", 512))
            self.engine.set_tap(self._to_synth)  # only while there is a synth: no call per message otherwise
        return self.synth_description

    def stop_synth(self) -> None:
        self.engine.set_tap(None)
        synth, self.synth = self.synth, None
        if synth is not None:
            synth.close()  # silences first

    @property
    def synth_description(self) -> str:
        synth = self.synth
        if synth is None:
            return "off"
        return f"{synth.soundfont.name} via {synth.audio_driver}"

    def _to_synth(self, tag: str | None, data: Sequence[int]) -> None:
        """What the engine sends, on the synth: the player's notes and improv's on their own sounds."""
        synth = self.synth
        if synth is None:
            return
        if tag is None:
            if len(data) == 3 and data[0] & 0xF0 == 0xB0 and data[1] in (ALL_SOUND_OFF, ALL_NOTES_OFF):
                synth.all_notes_off()  # a panic
            return
        synth.send(rechannel(data, synth.player_channel if tag in PLAYER_TAGS else synth.improv_channel))

    def _open_port(self, opener: Callable[[], _Port], kind: str, optional: bool) -> _Port | None:
        try:
            return opener()
        except PortError as error:
            if not optional:
                raise
            self.problems.append(f"no MIDI {kind}: {error}")
            return None

    def _port_changed(self, message: str) -> None:
        """A port came or went (the watcher's thread). An output that returns is told all notes off:
        a note-off sent while it was gone never arrived."""
        self.messages.put(message)
        output = self.output
        if output is not None and message.startswith("output") and message.endswith("reconnected"):
            for channel in self.engine.channels():  # on that port only, not the built-in synth
                output.send((0xB0 | channel, ALL_NOTES_OFF, 0))

    def _ports(self) -> list[Watchable]:
        return [port for port in (self.input, self.output) if port is not None]

    def _send(self, data: Sequence[int]) -> bool:
        output = self.output
        if output is None:
            if self.synth is not None:
                return True  # the built-in synth is the only output, and it hears everything sent
            self.unsent += 1
            return False
        return output.send(data)

    def list_ports(self, api: str | None = None) -> tuple[list[str], list[str]]:
        """(inputs, outputs) of other programs that `switch_input`/`switch_output` can open; PortError if
        the MIDI API is not usable."""
        inputs, outputs = list_ports(api if api is not None else self.api)
        own = re.compile(rf"^{re.escape(DEFAULT_CLIENT)}(-\d+)?:")
        return [p for p in inputs if not own.match(p)], [p for p in outputs if not own.match(p)]

    def switch_input(self, spec: str | None, api: str | None = None) -> str:
        """Listen on the port `spec` names (None: a virtual port) from now on; the old input closes.

        Raises PortError (and keeps the old input) if the new one cannot open.
        Keys held on the old input are released in the engine, so no phrase waits forever for them.
        """
        api = self.api if api is None else api
        new = open_input(spec, api, self.engine.push)
        with self._lock:
            old, self.input = self.input, new
            self.api = api
        self.watcher.ports = self._ports()
        if old is not None:
            old.close()
            now = time.monotonic()
            for channel in range(16):
                self.engine.push([0xB0 | channel, ALL_NOTES_OFF, 0], now)
        return new.description

    def switch_output(self, spec: str | None, api: str | None = None) -> str:
        """Answer on the port `spec` names (None: a virtual port) from now on; the old output is silenced
        and closed. Raises PortError (and keeps the old output) if the new one cannot open."""
        api = self.api if api is None else api
        new = open_output(spec, api)
        self.engine.silence()
        with self._lock:
            old, self.output = self.output, new
            self.api = api
        self.watcher.ports = self._ports()
        if old is not None:
            for channel in range(16):  # a note the engine struck between the panic and the swap
                old.send([0xB0 | channel, ALL_NOTES_OFF, 0])
            old.close()
        return new.description

    def start(self) -> None:
        self.engine.start(realtime=True)
        self.watcher.start()

    def save_learned(self, learned: controls_mod.Learned) -> Path:
        """Apply a MIDI-learned mapping and keep it in the config file (never from the engine thread)."""
        self.control_map = self.control_map.with_mapping(*learned)
        self.config = self.config.with_mapping(*learned)  # the file keeps its own mappings, not command-line overrides
        return config_mod.save_config(self.config, self.config_path)

    def silence(self) -> None:
        """Stop the engine: every note off, on the output and the synth. The ports stay open. Safe to call again."""
        with self._lock:
            if self._silenced:
                return
            self._silenced = True
        self.engine.stop()

    def close(self) -> None:
        """Silence, then stop the port watcher and the synth and close the ports: each of those may
        wait on JACK or an audio driver, so they are bounded by `exit_if_close_stalls_s` when set."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
        self.silence()
        with _exit_if_stalled(self.exit_if_close_stalls_s):
            self.watcher.stop()
            self.stop_synth()
            if self.input is not None:
                self.input.close()
            if self.output is not None:
                self.output.close()

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextlib.contextmanager
def _exit_if_stalled(seconds: float | None) -> Iterator[None]:
    """End the process if the block takes longer than `seconds`.

    The stall is inside the MIDI library's C++ destructor, which holds the GIL,
    so no Python thread or signal handler could run: faulthandler's watchdog is
    a C thread. It exits with status 1 (its tracebacks go to /dev/null).
    """
    if seconds is None:
        yield
        return
    with open(os.devnull, "w") as devnull:
        faulthandler.dump_traceback_later(seconds, exit=True, file=devnull)
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()


_EXIT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def ignore_exit_signals() -> None:
    """Shutting down: an impatient second Ctrl-C or a SIGTERM must not cut the silencing short.

    (Measured: a second signal 5 ms after the first left 4 notes sounding.) Main thread only.
    """
    for signum in _EXIT_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    ignore_exit_signals()  # the first one ends the run; the rest must wait for the silence
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def install_exit_handlers(session: LiveSession) -> None:
    """For a process that is the session: SIGTERM/SIGHUP end the run like Ctrl-C, only the first
    such signal counts, an exception in any thread silences first, and a stall in closing the
    ports cannot keep the process alive."""
    session.exit_if_close_stalls_s = CLOSE_STALL_EXIT_S
    for signum in _EXIT_SIGNALS:
        signal.signal(signum, _raise_exit)
    previous = threading.excepthook

    def on_thread_error(info: threading.ExceptHookArgs) -> None:
        session.engine.silence()
        previous(info)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.excepthook = on_thread_error
