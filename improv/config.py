"""improv's settings: one frozen dataclass, validated on construction, kept in a TOML file.

The config file (``~/.config/improv/config.toml`` on Linux). Every key is
optional; a missing file means all defaults. If ``[controls]`` is present it
is the complete set of mappings (an empty table maps nothing); if it is
absent, the temperature knob is on CC 1 (the modulation wheel), any channel::

    [engine]
    mode = "call"         # "call": answer when you pause; "duet": play along
    gap_ms = 500          # the pause, in milliseconds, before improv answers
    temperature = 1.0     # at start-up, until the knob moves
    temperature_lo = 0.1  # temperature knob at 0
    temperature_mid = 1.0 # ... at 64
    temperature_hi = 3.0  # ... at 127
    reply_notes = 16      # notes per reply at start-up
    reply_notes_lo = 4    # reply_length knob at 0
    reply_notes_hi = 64   # ... at 127
    seed_events = 64      # the rolling seed: how many recent events the model state is rebuilt from
    register_margin = 12  # answers stay within this many semitones of your notes (0: anywhere in the range)
    chord_margin = 1      # answers' chords: at most this many notes more than your largest recent chord
    plan = true           # answers take their shape from your call (false: as the model plays them)
    plan_register = 4     # semitones an answer's median may drift from your call's before it is steered back
    plan_leap = 2         # semitones from your last notes to the answer's first (or a tone of your last chord)
    plan_span = 12        # semitones an answer may be wider than your call
    plan_pace = 2.0       # an answer's steps within this factor of your call's pulse, either way
    plan_chord = 1        # notes an answer's chord may have more than your call's largest
    plan_length = 4.0     # answer notes per call note (at least half, at most reply_notes)
    plan_motif = 1.0      # share of the answer's melody notes that continue your call's interval pairs
    plan_key = 1.0        # share of answer notes in your call's scale
    plan_quote = 4        # notes of your call an answer may repeat in a row at the same pitch (0: any number)
    plan_repeat = 2       # times an answer may play a figure of its own (4 notes) at the same pitch (0: any number)
    plan_accent = 0.2     # 0-1: how much louder or softer than your call an answer note may be (0.2: 20 %)
    soundfont = ""        # --synth without a file uses this SoundFont ("": look in the usual places)
    link_tempo = 120.0    # --sync link: the tempo of a session improv starts (no peer there yet), 20-400 BPM
    link_quantum = 4      # --sync link: beats in the session's bar (--reply-on bar), 1-16

    [controls]            # action = { cc = 0-127 } or { note = 0-127 }, and
                          # channel = 1-16 as on your gear; no channel: any
    temperature = { cc = 1 }
    reply_length = { cc = 74 }
    panic = { note = 108, channel = 10 }
    mode = { cc = 80 }

Channels are 1-16 in the file and 0-15 in Python (`Source.channel`), like
the rest of improv. A file that cannot be used (invalid TOML, unknown key or
action, wrong type, number out of range, one source for two actions) raises a
one-line `ConfigError` naming the file, and `save_config` refuses to replace
it, so a typo never costs the user their settings. Saving rewrites the file
from the `Config`: comments are not kept.
"""

from __future__ import annotations

import os
import stat
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomli_w

from improv.errors import ConfigError
from improv.controls.actions import (
    CHANNELS,
    DEFAULT_CONTROLS,
    Action,
    Source,
    SourceKind,
    SourceLike,
    action_named,
    check_controls,
    check_int,
    check_reply_bounds,
    check_temperature_bounds,
    remap,
    show_value,
)
from improv.controls.control_map import ControlMap
from improv.model.temperature import check_temperature

__all__ = ["MAX_SEED_EVENTS", "Config", "default_config_path", "format_config", "load_config", "parse_config", "save_config"]

CONFIG_FILE_NAME = "config.toml"
_DATA_MAX = 127
_MODES = ("call", "duet")  # as improv.live.engine.MODES, which imports torch


# -- config -----------------------------------------------------------------------


_BPM_RANGE = (20.0, 400.0)  # as improv.live.clock.BPM_RANGE (the live package imports torch)
_LINK_QUANTUM_RANGE = (1, 16)  # as improv.live.settings.LINK_QUANTUM_RANGE
MAX_SEED_EVENTS = 1024  # 16 times the model's training windows; rebuilding it after a model change takes ~0.6 s


@dataclass(frozen=True)
class Config:
    """Everything improv keeps between sessions; validated on construction.

    Engine values as in the ``[engine]`` table of the module docstring;
    `controls` as in ``[controls]`` (channels 0-15 here, 1-16 in the file).
    """

    mode: str = "call"
    gap_ms: int = 500
    temperature: float = 1.0
    temperature_lo: float = 0.1
    temperature_mid: float = 1.0
    temperature_hi: float = 3.0
    reply_notes: int = 16
    reply_notes_lo: int = 4
    reply_notes_hi: int = 64
    seed_events: int = 64
    register_margin: int = 12
    chord_margin: int = 1
    plan: bool = True
    plan_register: int = 4
    plan_leap: int = 2
    plan_span: int = 12
    plan_pace: float = 2.0
    plan_chord: int = 1
    plan_length: float = 4.0
    plan_motif: float = 1.0
    plan_key: float = 1.0
    plan_quote: int = 4
    plan_repeat: int = 2
    plan_accent: float = 0.2
    soundfont: str = ""
    link_tempo: float = 120.0
    link_quantum: int = 4
    controls: Mapping[Action, Source] = field(default_factory=lambda: DEFAULT_CONTROLS)

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ConfigError(f"mode must be one of {', '.join(map(repr, _MODES))}, got {show_value(self.mode)}")
        set_ = object.__setattr__
        set_(self, "gap_ms", check_int(self.gap_ms, "gap_ms", 1, 60_000))
        lo, mid, hi = check_temperature_bounds(self.temperature_lo, self.temperature_mid, self.temperature_hi)
        set_(self, "temperature_lo", lo)
        set_(self, "temperature_mid", mid)
        set_(self, "temperature_hi", hi)
        set_(self, "temperature", check_temperature(self.temperature))
        notes_lo, notes_hi = check_reply_bounds(self.reply_notes_lo, self.reply_notes_hi)
        set_(self, "reply_notes_lo", notes_lo)
        set_(self, "reply_notes_hi", notes_hi)
        set_(self, "reply_notes", check_int(self.reply_notes, "reply_notes", notes_lo, notes_hi))
        set_(self, "seed_events", check_int(self.seed_events, "seed_events", 1, MAX_SEED_EVENTS))
        margin = check_int(self.register_margin, "register_margin", 0, 127)
        if 0 < margin < 6:
            raise ConfigError(f"register_margin must be 0 (off) or 6-127, got {margin}")
        set_(self, "register_margin", margin)
        set_(self, "chord_margin", check_int(self.chord_margin, "chord_margin", 0, 127))
        _check_plan(self)
        if not isinstance(self.soundfont, str):
            raise ConfigError(f"soundfont must be a file path in quotes, got {show_value(self.soundfont)}")
        set_(self, "link_tempo", _check_bpm(self.link_tempo, "link_tempo"))
        set_(self, "link_quantum", check_int(self.link_quantum, "link_quantum", *_LINK_QUANTUM_RANGE))
        if not isinstance(self.controls, Mapping):
            raise ConfigError(f"controls must be a table of action = source, got {show_value(self.controls)}")
        set_(self, "controls", check_controls(self.controls))

    def control_map(self) -> ControlMap:
        """A `ControlMap` with these mappings and knob ranges."""
        return ControlMap(
            self.controls,
            temperature_bounds=(self.temperature_lo, self.temperature_mid, self.temperature_hi),
            reply_notes_bounds=(self.reply_notes_lo, self.reply_notes_hi),
        )

    def with_mapping(self, action: Action | str, source: SourceLike | None) -> Config:
        """A copy with `action` on `source` (None: unmapped), as `ControlMap.with_mapping`."""
        return replace(self, controls=remap(self.controls, action, source))

    def copy(self, **overrides: Any) -> Config:
        """A copy with some fields changed (validated again)."""
        return replace(self, **overrides)


_PLAN_INTS = (("plan_register", 0, 24), ("plan_leap", 0, 12), ("plan_span", 0, 48), ("plan_chord", 0, 8),
              ("plan_quote", 0, 64), ("plan_repeat", 0, 16))
_PLAN_FLOATS = (("plan_pace", 1.0, 8.0), ("plan_length", 0.5, 4.0), ("plan_motif", 0.0, 1.0), ("plan_key", 0.0, 1.0),
                ("plan_accent", 0.0, 1.0))


def _check_plan(config: Config) -> None:
    """The answer planner's keys (as `improv.live.planner.PlanSettings` checks them)."""
    if not isinstance(config.plan, bool):
        raise ConfigError(f"plan must be true or false, got {show_value(config.plan)}")
    for name, lo, hi in _PLAN_INTS:
        object.__setattr__(config, name, check_int(getattr(config, name), name, lo, hi))
    for name, lo, hi in _PLAN_FLOATS:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise ConfigError(f"{name} must be a number {lo:g}-{hi:g}, got {show_value(value)}")
        object.__setattr__(config, name, float(value))


def _check_bpm(value: object, name: str) -> float:
    lo, hi = _BPM_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be a tempo of {lo:g}-{hi:g} BPM, got {show_value(value)}")
    return float(value)


_ENGINE_KEYS = tuple(f.name for f in fields(Config) if f.name != "controls")


def default_config_path() -> Path:
    """``config.toml`` in the user config directory (platformdirs), e.g. ~/.config/improv/."""
    import platformdirs

    return Path(platformdirs.user_config_dir("improv")) / CONFIG_FILE_NAME


def _one_line(text: str) -> str:
    return " ".join(text.split("\n"))


def _source_from_toml(action: Action, value: object) -> Source:
    if not isinstance(value, dict):
        raise ConfigError(f"controls.{action} must be a table like {{ cc = 1 }}, got {show_value(value)}")
    unknown = sorted(set(value) - {"cc", "note", "channel"})
    if unknown:
        raise ConfigError(f"controls.{action} has unknown key {unknown[0]!r}; use cc or note, and channel")
    kinds = [k for k in ("cc", "note") if k in value]
    if len(kinds) != 1:
        raise ConfigError(f"controls.{action} needs exactly one of cc or note, e.g. {{ cc = 1 }}")
    kind: SourceKind = "cc" if kinds[0] == "cc" else "note"
    number = check_int(value[kind], f"controls.{action}.{kind}", 0, _DATA_MAX)
    channel = None
    if "channel" in value:
        channel = check_int(value["channel"], f"controls.{action}.channel", 1, CHANNELS) - 1
    return Source(kind, number, channel)


def _config_from_data(data: dict[str, Any]) -> Config:
    unknown = sorted(set(data) - {"engine", "controls"})
    if unknown:
        raise ConfigError(f"unknown key or table {unknown[0]!r}; the tables are [engine] and [controls]")
    engine = data.get("engine", {})
    if not isinstance(engine, dict):
        raise ConfigError(f"engine must be a table, got {show_value(engine)}")
    unknown = sorted(set(engine) - set(_ENGINE_KEYS))
    if unknown:
        raise ConfigError(f"unknown key engine.{unknown[0]}; valid keys: {', '.join(_ENGINE_KEYS)}")
    if "controls" not in data:
        return Config(**engine)
    controls = data["controls"]
    if not isinstance(controls, dict):
        raise ConfigError(f"controls must be a table, got {show_value(controls)}")
    sources = {}
    for key, value in controls.items():
        action = action_named(key)
        sources[action] = _source_from_toml(action, value)
    return Config(**engine, controls=sources)


def parse_config(text: str | bytes, path: str | os.PathLike[str] = "<config>") -> Config:
    """A `Config` from TOML text; ConfigError (one line, naming `path`) if unusable."""
    try:
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ConfigError(f"not UTF-8 text (byte {error.start})") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"invalid TOML: {error}") from None
        return _config_from_data(data)
    except ConfigError as error:
        message = f"config file {path}: {error} (fix the file, or delete it to use the defaults)"
        raise ConfigError(_one_line(message)) from None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """The config at `path` (default: `default_config_path()`); defaults if there is no file."""
    path = default_config_path() if path is None else Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Config()
    except OSError as error:
        raise ConfigError(_one_line(f"cannot read config file {path}: {error.strerror or error}")) from None
    return parse_config(raw, path)


def format_config(config: Config) -> str:
    """`config` as the TOML text `save_config` writes; `parse_config` reads it back equal."""
    engine = {name: getattr(config, name) for name in _ENGINE_KEYS}
    controls: dict[str, dict[str, int]] = {}
    for action, source in config.controls.items():
        entry: dict[str, int] = {source.kind: source.number}
        if source.channel is not None:
            entry["channel"] = source.channel + 1
        controls[action.value] = entry
    header = "# improv settings, rewritten by improv (comments are not kept); format: pydoc improv.config\n\n"
    return header + tomli_w.dumps({"engine": engine, "controls": controls})


def save_config(config: Config, path: str | os.PathLike[str] | None = None) -> Path:
    """Write `config` atomically (temp file + os.replace) and return the path written.

    Refuses, with ConfigError, to replace a file that exists but is not a
    valid config: the user may have typed something worth keeping. A symlink
    is followed, so the file it points to is the one replaced.
    """
    path = default_config_path() if path is None else Path(path)
    target = path.resolve() if path.is_symlink() else path
    text = format_config(config)
    if parse_config(text, "<written config>") != config:  # never write what cannot be read back
        raise ConfigError(f"config cannot be written faithfully to {path}: {config!r}")
    mode = None
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise ConfigError(_one_line(f"cannot write config file {path}: {error.strerror or error}")) from None
    if mode is not None:
        try:
            load_config(target)
        except ConfigError as error:
            raise ConfigError(f"cannot save settings: {error}") from None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            if mode is not None:
                os.chmod(temp, mode)
            os.replace(temp, target)
        except BaseException:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise
    except OSError as error:
        raise ConfigError(_one_line(f"cannot write config file {path}: {error.strerror or error}")) from None
    return target
