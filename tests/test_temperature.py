"""One temperature rule, 0.1-3.0: the command line, the config, the knob and the keys agree."""

from __future__ import annotations

import pytest

from improv import cli
from improv.config import Config
from improv.errors import ConfigError
from improv.live.engine import Engine, EngineSettings, Message
from improv.model.temperature import (
    TEMPERATURE_MAX,
    TEMPERATURE_MIN,
    check_temperature,
    clamp_temperature,
    nudge_temperature,
)

OUTSIDE = [0.05, 3.5, 0.0, -1.0, float("nan"), float("inf")]
INSIDE = [TEMPERATURE_MIN, 0.5, 1.0, 2.2, TEMPERATURE_MAX]
RULE = "must be .*0.1 to 3.0"


@pytest.mark.parametrize("value", OUTSIDE)
def test_the_rule_refuses_values_outside_the_range(value: float) -> None:
    with pytest.raises(ConfigError, match=RULE):
        check_temperature(value)


@pytest.mark.parametrize("value", INSIDE)
def test_the_rule_keeps_values_inside_the_range(value: float) -> None:
    assert check_temperature(value) == value


@pytest.mark.parametrize("value", OUTSIDE[:4])
def test_the_command_line_refuses_what_the_rule_refuses(value: float, capsys, tmp_path) -> None:
    out = tmp_path / "out.mid"
    assert cli.main(["generate", "-o", str(out), "--notes", "4", "--temperature", str(value)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "temperature must be" in err and "0.1 to 3.0" in err
    assert not out.exists()


@pytest.mark.parametrize("value", OUTSIDE[:4])
def test_the_live_command_line_refuses_before_opening_anything(value: float, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert cli.main(["--headless", "--temperature", str(value), "--config", str(tmp_path / "none.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "temperature must be" in err and "0.1 to 3.0" in err


@pytest.mark.parametrize("value", OUTSIDE)
def test_the_config_refuses_what_the_rule_refuses(value: float) -> None:
    with pytest.raises(ConfigError, match=RULE):
        Config(temperature=value)
    with pytest.raises(ConfigError, match=RULE):
        Config(temperature_hi=value) if value > 1 else Config(temperature_lo=value)


def test_the_knob_spans_exactly_the_range() -> None:
    controls = Config().control_map()
    values = [controls.match((0xB0, 1, cc)).value for cc in (0, 64, 127)]
    assert values == pytest.approx([TEMPERATURE_MIN, 1.0, TEMPERATURE_MAX])


@pytest.mark.parametrize(
    ("start", "delta", "expected"),
    [(2.98, 0.05, TEMPERATURE_MAX), (TEMPERATURE_MAX, 0.05, TEMPERATURE_MAX), (0.12, -0.05, TEMPERATURE_MIN),
     (1.0, 0.05, 1.05), (1.0, -0.05, 0.95)],
)
def test_keys_stop_at_the_ends_of_the_range(start: float, delta: float, expected: float) -> None:
    assert nudge_temperature(start, delta) == pytest.approx(expected)


def test_clamp_holds_to_the_range() -> None:
    assert [clamp_temperature(v) for v in (-5, 0.05, 1.5, 9)] == [TEMPERATURE_MIN, TEMPERATURE_MIN, 1.5, TEMPERATURE_MAX]


def test_the_engine_keys_and_commands_follow_the_rule(tiny_model) -> None:
    now = [100.0]
    engine = Engine(tiny_model, lambda data: None, EngineSettings(random_seed=1, temperature=2.98), clock=lambda: now[0])
    engine.command("temperature_step", 0.05)
    engine.process(now[0])
    assert engine.temperature == TEMPERATURE_MAX
    engine.command("temperature", 0.05)  # refused: the engine reports it and keeps its temperature
    engine.process(now[0])
    assert engine.temperature == TEMPERATURE_MAX
    events = []
    while not engine.events.empty():
        events.append(engine.events.get_nowait())
    assert any(isinstance(e, Message) and "0.1 to 3.0" in str(e) for e in events)
    with pytest.raises(ConfigError, match=RULE):
        EngineSettings(temperature=4.0)
