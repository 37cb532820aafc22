"""Control surface: matching raw MIDI to actions, MIDI learn, and the config file."""

from __future__ import annotations

import os
import random
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import improv.config as config_module
from improv.config import Config, default_config_path, format_config, load_config, parse_config, save_config
from improv.controls.control_map import CONSUMED, ControlEvent, ControlMap
from improv.controls.actions import (
    DEFAULT_CONTROLS,
    Action,
    Learned,
    Learner,
    Source,
    check_cc_number,
    follow_from_cc,
    reply_notes_from_cc,
)
from improv.errors import ConfigError


def on(pitch: int, velocity: int = 100, channel: int = 0) -> list[int]:
    return [0x90 | channel, pitch, velocity]


def off(pitch: int, channel: int = 0) -> list[int]:
    return [0x80 | channel, pitch, 64]


def cc(control: int, value: int, channel: int = 0) -> list[int]:
    return [0xB0 | channel, control, value]


CLOCK = [0xF8]

EVERYTHING_MAPPED = {
    Action.TEMPERATURE: Source.cc(1),
    Action.REPLY_LENGTH: Source.cc(74),
    Action.FOLLOW: Source.cc(75, channel=2),
    Action.PANIC: Source.note(108),
    Action.MODE: Source.cc(80),
    Action.RESET: Source.note(21, channel=9),
    Action.PAUSE: Source.cc(64),
}


# -- continuous controls -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "temperature"),
    [(0, 0.1), (64, 1.0), (127, 3.0)],
)
def test_mod_wheel_endpoints_set_the_temperature(value: int, temperature: float) -> None:
    controls = ControlMap()  # defaults: CC 1 on any channel
    for channel in (0, 15):
        event = controls.match(cc(1, value, channel))
        assert event is not None and event.action == Action.TEMPERATURE
        assert event.value == pytest.approx(temperature, rel=1e-12)


def test_temperature_bounds_are_configurable_and_monotonic() -> None:
    controls = Config(temperature_lo=0.2, temperature_mid=0.8, temperature_hi=2.0, temperature=0.8).control_map()
    events = [controls.match(cc(1, v)) for v in range(128)]
    values = [e.value for e in events if e is not None and e.value is not None]
    assert len(values) == 128
    assert values[0] == pytest.approx(0.2) and values[64] == pytest.approx(0.8) and values[127] == 2.0
    assert all(a < b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize(
    ("value", "notes"),
    [(0, 4), (32, 8), (64, 16), (96, 33), (127, 64)],
)
def test_reply_length_knob_is_log_scaled(value: int, notes: int) -> None:
    assert reply_notes_from_cc(value) == notes
    event = ControlMap({"reply_length": ("cc", 74)}).match(cc(74, value))
    assert event == ControlEvent(Action.REPLY_LENGTH, notes)


def test_reply_length_with_equal_bounds_is_constant() -> None:
    assert {reply_notes_from_cc(v, 8, 8) for v in range(128)} == {8}


@pytest.mark.parametrize(("value", "amount"), [(0, 0.0), (127, 1.0)])
def test_follow_is_zero_to_one(value: int, amount: float) -> None:
    assert follow_from_cc(value) == amount
    assert ControlMap({"follow": ("cc", 75)}).match(cc(75, value)) == ControlEvent(Action.FOLLOW, amount)


# -- triggers ------------------------------------------------------------------------


# CC values a button sends, and how many times the action must fire.
EDGE_CASES = {
    "one press: 127 then 0": ([127, 0], 1),
    "three presses": ([127, 0, 127, 0, 127, 0], 3),
    "held button repeating 127": ([127, 127, 127, 0], 1),
    "jitter above the threshold": ([64, 100, 127, 90, 0], 1),
    "release first": ([0, 127, 0], 1),
    "stays below 64": ([0, 10, 63, 0], 0),
    "crossing at 63 -> 64": ([63, 64, 63, 64], 2),
}


@pytest.mark.parametrize(("values", "fires"), EDGE_CASES.values(), ids=EDGE_CASES.keys())
def test_cc_trigger_fires_on_the_rising_edge(values: list[int], fires: int) -> None:
    controls = ControlMap({"panic": ("cc", 80)})
    events = [controls.match(cc(80, v)) for v in values]
    assert events.count(ControlEvent(Action.PANIC)) == fires
    assert all(e in (ControlEvent(Action.PANIC), CONSUMED) for e in events)  # never passed on as music


def test_cc_trigger_edges_are_per_channel() -> None:
    controls = ControlMap({"mode": ("cc", 80)})
    assert controls.match(cc(80, 127, channel=0)) == ControlEvent(Action.MODE)
    assert controls.match(cc(80, 127, channel=1)) == ControlEvent(Action.MODE)
    assert controls.match(cc(80, 127, channel=0)) is CONSUMED


def test_reset_forgets_held_buttons() -> None:
    controls = ControlMap({"pause": ("cc", 64)})
    assert controls.match(cc(64, 127)) == ControlEvent(Action.PAUSE)
    controls.reset()
    assert controls.match(cc(64, 127)) == ControlEvent(Action.PAUSE)


def test_note_mapped_trigger_consumes_its_note_on_and_note_off() -> None:
    controls = ControlMap({"panic": Source.note(108), "reset": Source.note(21, channel=9)})
    assert controls.match(on(108)) == ControlEvent(Action.PANIC)
    assert controls.match([0xA0, 108, 50]) is CONSUMED  # its polyphonic aftertouch
    assert controls.match(off(108)) is CONSUMED
    assert controls.match(on(108, velocity=0)) is CONSUMED  # note-off as velocity 0
    assert controls.match(on(108, channel=5)) == ControlEvent(Action.PANIC)  # any channel
    assert controls.match(on(21, channel=9)) == ControlEvent(Action.RESET)
    assert controls.match(off(21, channel=9)) is CONSUMED
    assert controls.match(on(21, channel=0)) is None  # reset listens on channel 10 only
    assert controls.match(off(21, channel=0)) is None


NOT_CONTROLS = {
    "a played note": on(60),
    "its note-off": off(60),
    "an unmapped CC": cc(7, 100),
    "mapped CC number as a note": on(1),
    "mapped note number as a CC": cc(108, 127),
    "pitch bend on the mapped number": [0xE0, 1, 64],
    "program change": [0xC0, 1],
    "channel pressure": [0xD0, 100],
    "clock": CLOCK,
    "start": [0xFA],
    "sysex": [0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7],
    "empty": [],
    "two messages at once": cc(1, 0) + cc(1, 127),
    "running status without status": [1, 64],
}


@pytest.mark.parametrize("data", NOT_CONTROLS.values(), ids=NOT_CONTROLS.keys())
def test_non_controls_return_none(data: list[int]) -> None:
    controls = ControlMap({"temperature": ("cc", 1), "panic": ("note", 108)})
    assert controls.match(data) is None


def test_empty_map_matches_nothing() -> None:
    controls = ControlMap({})
    assert [controls.match(m) for m in (cc(1, 64), on(108), off(108))] == [None, None, None]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=-300, max_value=300), max_size=5))
def test_garbage_never_raises(data: list[int]) -> None:
    controls = ControlMap(EVERYTHING_MAPPED)
    result = controls.match(data)
    assert result is None or isinstance(result, ControlEvent)
    learned = Learner("panic").feed(data)
    assert learned is None or learned.action == Action.PANIC


def test_seeded_random_bytes_never_raise() -> None:
    rng = random.Random(1234)
    controls = ControlMap(EVERYTHING_MAPPED)
    seen: set[Action | None] = set()
    # Most bytes from the mapped statuses, numbers and edge values, so every mapping is hit.
    likely = (0x90, 0x99, 0x80, 0xA0, 0xB0, 0xB2, 1, 21, 64, 74, 75, 80, 108, 0, 127)
    for _ in range(10_000):
        length = rng.choice((0, 1, 2, 3, 3, 3, 4))
        data = bytes(rng.choice(likely) if rng.random() < 0.75 else rng.randrange(256) for _ in range(length))
        event = controls.match(data)
        learned = Learner("mode").feed(data)
        assert learned is None or learned.action == Action.MODE
        if event is not None:
            seen.add(event.action)
    assert seen >= set(Action) | {None}  # random bytes hit every mapping, and releases


# -- mappings ------------------------------------------------------------------------


def test_with_mapping_moves_a_source_between_actions() -> None:
    controls = ControlMap({"temperature": ("cc", 1), "mode": ("cc", 80)})
    moved = controls.with_mapping("follow", Source.cc(1))
    assert dict(moved.mappings) == {Action.FOLLOW: Source.cc(1), Action.MODE: Source.cc(80)}
    assert moved.match(cc(1, 127)) == ControlEvent(Action.FOLLOW, 1.0)
    assert controls.match(cc(1, 127)) == ControlEvent(Action.TEMPERATURE, 3.0)  # the old map is unchanged
    assert moved.with_mapping("mode", None).source("mode") is None


def test_with_mapping_keeps_a_channel_specific_neighbour() -> None:
    controls = ControlMap({"mode": ("cc", 80, 0)}).with_mapping("pause", ("cc", 80, 1))
    assert dict(controls.mappings) == {Action.MODE: Source.cc(80, 0), Action.PAUSE: Source.cc(80, 1)}


@pytest.mark.parametrize(
    ("mappings", "message"),
    [
        ({"temperature": ("note", 60)}, "temperature takes a value, so it needs a CC"),
        ({"mode": ("cc", 3), "panic": ("cc", 3, 4)}, "mode and panic both use CC 3"),
        ({"tempo": ("cc", 3)}, "unknown action 'tempo'"),
        ({"mode": ("cc", 128)}, "CC number must be 0-127, got 128"),
        ({"mode": ("cc", 1, 16)}, "channel must be 0-15, got 16"),
        ({"mode": ("knob", 1)}, "'cc' or 'note'"),
    ],
)
def test_bad_mappings_raise(mappings: dict[str, tuple[str, int]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ControlMap(mappings)


def test_action_kinds() -> None:
    assert {a for a in Action if a.continuous} == {Action.TEMPERATURE, Action.REPLY_LENGTH, Action.FOLLOW}
    name: str = Action.PANIC  # a str, so the engine can compare names
    assert name == "panic" and Action("panic") is Action.PANIC


def test_source_str_uses_channels_as_printed_on_gear() -> None:
    assert str(Source.cc(1)) == "CC 1 (any channel)"
    assert str(Source.note(36, channel=9)) == "note 36 (channel 10)"


@pytest.mark.parametrize(("text", "number"), [("0", 0), ("127", 127), (" 74 ", 74), (1, 1)])
def test_check_cc_number_accepts(text: str | int, number: int) -> None:
    assert check_cc_number(text, "--temp-cc") == number


@pytest.mark.parametrize("text", ["200", "-1", "x", "1.5", 1.0, True, None])
def test_check_cc_number_names_the_option(text: object) -> None:
    with pytest.raises(ConfigError, match="^--temp-cc must be") as error:
        check_cc_number(text, "--temp-cc")
    assert "\n" not in str(error.value)


# -- MIDI learn ------------------------------------------------------------------------


def test_learner_maps_the_next_cc_and_ignores_notes_and_clock() -> None:
    learner = Learner("temperature")
    ignored = [on(60), off(60), CLOCK, [0xFA], [0xC0, 5], [0xE0, 0, 64], cc(123, 0), cc(121, 0), [0xB0, 7], []]
    assert [learner.feed(m) for m in ignored] == [None] * len(ignored)
    learned = learner.feed(cc(74, 33, channel=3))
    assert learned == Learned(Action.TEMPERATURE, Source.cc(74))
    assert str(learned) == "temperature on CC 74 (any channel)"
    assert learner.feed(cc(75, 1)) is None  # one use
    controls = ControlMap().with_mapping(*learned)
    assert controls.match(cc(74, 127, channel=8)) == ControlEvent(Action.TEMPERATURE, 3.0)
    assert controls.match(cc(1, 127)) is None


def test_learner_takes_a_note_for_a_trigger() -> None:
    learner = Learner(Action.PANIC, keep_channel=True)
    assert learner.feed(on(60, velocity=0)) is None  # a note-off is not a strike
    assert learner.feed(off(60)) is None
    learned = learner.feed(on(108, channel=9))
    assert learned == Learned(Action.PANIC, Source.note(108, channel=9))
    controls = ControlMap().with_mapping(*learned)
    assert controls.match(off(108, channel=9)) is CONSUMED  # the learning key's release stays silent


def test_learner_takes_a_cc_button_for_a_trigger() -> None:
    assert Learner("pause").feed(cc(64, 127)) == Learned(Action.PAUSE, Source.cc(64))


def test_learner_rejects_unknown_actions() -> None:
    with pytest.raises(ConfigError, match="unknown action 'volume'"):
        Learner("volume")


# -- config file -----------------------------------------------------------------------


CUSTOM = Config(
    mode="duet",
    gap_ms=350,
    temperature=0.7,
    temperature_lo=0.15,
    temperature_mid=0.9,
    temperature_hi=2.5,
    reply_notes=12,
    reply_notes_lo=2,
    reply_notes_hi=100,
    seed_events=128,
    register_margin=0,
    chord_margin=3,
    controls=EVERYTHING_MAPPED,
)


@pytest.mark.parametrize("config", [Config(), CUSTOM, Config(controls={})], ids=["defaults", "custom", "no controls"])
def test_config_round_trips(tmp_path: Path, config: Config) -> None:
    path = tmp_path / "improv" / "config.toml"  # the directory is created
    assert save_config(config, path) == path
    assert load_config(path) == config
    assert os.listdir(path.parent) == ["config.toml"]  # no temporary file left behind
    save_config(config.copy(gap_ms=900), path)  # replacing a valid file is fine
    assert load_config(path).gap_ms == 900


def test_written_file_is_the_documented_format(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    save_config(CUSTOM, path)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data["engine"]["mode"] == "duet" and data["engine"]["temperature_hi"] == 2.5
    assert data["controls"]["reset"] == {"note": 21, "channel": 10}  # channels 1-16 in the file
    assert data["controls"]["temperature"] == {"cc": 1}
    docstring = config_module.__doc__ or ""
    example = textwrap.dedent(docstring.split("any channel::\n", 1)[1].split("\n\nChannels are", 1)[0])
    config = parse_config(example)  # the module docstring's example
    assert config == Config(controls=config.controls) and len(config.controls) == 4
    assert config.controls[Action.PANIC] == Source.note(108, channel=9)
    assert config.control_map().match(on(108, channel=9)) == ControlEvent(Action.PANIC)


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path / "nowhere" / "config.toml") == Config()
    assert Config().controls == DEFAULT_CONTROLS == {Action.TEMPERATURE: Source.cc(1)}


def test_partial_file_keeps_other_defaults() -> None:
    config = parse_config("[engine]\ngap_ms = 800\n")
    assert config == Config(gap_ms=800)
    assert parse_config("[controls]\n").controls == {}  # a [controls] table is the full set


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_CONFIG_HOME is the Linux config directory")
def test_default_path_is_in_the_user_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_config_path() == tmp_path / "improv" / "config.toml"
    save_config(CUSTOM)
    assert load_config() == CUSTOM


BROKEN_FILES = {
    "invalid TOML": (b"[engine\ngap_ms = 500\n", "invalid TOML"),
    "not UTF-8": (b"[engine]\nmode = \"\xff\"\n", "not UTF-8"),
    "string for a number": (b'[engine]\ngap_ms = "500"\n', "gap_ms must be an integer"),
    "float for an int": (b"[engine]\ngap_ms = 500.5\n", "gap_ms must be an integer"),
    "bool for a number": (b"[engine]\ntemperature = true\n", "temperature must be a number"),
    "unknown mode": (b'[engine]\nmode = "solo"\n', "mode must be one of"),
    "CC 200": (b"[controls]\ntemperature = { cc = 200 }\n", "controls.temperature.cc must be 0-127, got 200"),
    "channel 0": (b"[controls]\nmode = { cc = 20, channel = 0 }\n", "controls.mode.channel must be 1-16"),
    "unknown action": (b"[controls]\ntempo = { cc = 2 }\n", "unknown action 'tempo'"),
    "unknown engine key": (b"[engine]\ngap = 500\n", "unknown key engine.gap"),
    "unknown table": (b"[midi]\nport = 1\n", "unknown key or table 'midi'"),
    "source not a table": (b"[controls]\nmode = 80\n", "must be a table like"),
    "cc and note": (b"[controls]\nmode = { cc = 1, note = 2 }\n", "exactly one of cc or note"),
    "one CC, two actions": (b"[controls]\nmode = { cc = 80 }\npause = { cc = 80 }\n", "both use CC 80"),
    "note for a knob": (b"[controls]\nfollow = { note = 60 }\n", "needs a CC, not a note"),
    "bounds out of order": (b"[engine]\ntemperature_lo = 2.0\n", "temperature_lo < temperature_mid"),
}


@pytest.mark.parametrize(("content", "problem"), BROKEN_FILES.values(), ids=BROKEN_FILES.keys())
def test_broken_file_is_reported_in_one_line_and_never_overwritten(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as loading:
        load_config(path)
    message = str(loading.value)
    assert "\n" not in message and str(path) in message and problem in message
    with pytest.raises(ConfigError) as saving:
        save_config(Config(), path)
    assert "\n" not in str(saving.value) and str(path) in str(saving.value)
    assert path.read_bytes() == content
    assert os.listdir(tmp_path) == ["config.toml"]


def test_unreadable_path_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "config.toml").mkdir()
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "config.toml")
    with pytest.raises(ConfigError):
        save_config(Config(), tmp_path / "config.toml")
    assert (tmp_path / "config.toml").is_dir()


def test_save_follows_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "improv.toml"
    real.parent.mkdir()
    save_config(Config(), real)
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    save_config(CUSTOM, link)
    assert link.is_symlink() and load_config(real) == CUSTOM


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gap_ms": 0}, "gap_ms must be 1-60000"),
        ({"temperature": 5.0}, "temperature must be from 0.1 to 3.0"),
        ({"reply_notes": 200}, "reply_notes must be 4-64"),
        ({"reply_notes_lo": 0}, "reply_notes_lo must be 1-1024"),
        ({"temperature_hi": float("inf")}, "temperature_hi must be from 0.1 to 3.0"),
        ({"controls": [("mode", ("cc", 1))]}, "controls must be a table"),
        ({"seed_events": 0}, "seed_events must be 1-1024"),
        ({"register_margin": 3}, "register_margin must be 0 \\(off\\) or 6-127"),
        ({"chord_margin": -1}, "chord_margin must be 0-127"),
    ],
)
def test_config_validates_on_construction(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(**overrides)  # type: ignore[arg-type]


# The writer (tomli-w): any SoundFont path survives a round trip (control characters, quotes, unicode),
# and so do the knob bounds.
@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30), st.floats(min_value=0.1, max_value=0.99), st.floats(min_value=1.01, max_value=3.0))
def test_config_text_round_trips(text: str, lo: float, hi: float) -> None:
    config = Config(soundfont=text, temperature_lo=lo, temperature_hi=hi)
    assert parse_config(format_config(config)) == config


def test_the_rolling_seed_length_comes_from_the_command_line_over_the_config(tmp_path: Path, tiny_model) -> None:
    from improv.cli import build_parser
    from improv.live.engine import Engine
    from improv.live.session import settings_from

    config = Config(seed_events=32)
    parse = build_parser().parse_args
    assert settings_from(parse([]), config).seed_events == 32
    settings = settings_from(parse(["--seed-events", "8"]), config)
    engine = Engine(tiny_model, lambda data: None, settings)
    assert engine.improviser.seed.maxlen == 8
    with pytest.raises(ConfigError, match="--seed-events must be 1-1024, got 0"):
        settings_from(parse(["--seed-events", "0"]), config)


def test_the_register_margin_comes_from_the_command_line_over_the_config() -> None:
    from improv.cli import build_parser
    from improv.live.session import settings_from

    parse = build_parser().parse_args
    assert settings_from(parse([]), Config()).register_margin == 12
    assert settings_from(parse([]), Config(register_margin=24)).register_margin == 24
    assert settings_from(parse(["--register-margin", "0"]), Config(register_margin=24)).register_margin == 0
    with pytest.raises(ConfigError, match="--register-margin must be 0 \\(off\\) or 6-127 semitones, got 3"):
        settings_from(parse(["--register-margin", "3"]), Config())
