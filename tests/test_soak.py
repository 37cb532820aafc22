"""Soak: a minute of restless duet over JACK leaves no key struck twice, nothing sounding, and flat memory.
The hour-long run is `benchmarks/soak.py`; this is its short version, plus the analysis on known streams."""

from __future__ import annotations

import pytest
from support.soak import analyse, run_soak, summary

ON, OFF, CC = 0x90, 0x80, 0xB0


def stream(*messages: tuple[int, ...]) -> list[tuple[float, bytes]]:
    return [(i * 0.01, bytes(m)) for i, m in enumerate(messages)]


def test_a_note_on_for_a_sounding_key_is_a_restrike() -> None:
    heard = analyse(stream((ON, 53, 90), (ON, 53, 80), (OFF, 53, 0)))
    assert [(c, p) for _, c, p in heard.restrikes] == [(0, 53)]
    assert heard.sounding == set()


def test_an_off_between_is_no_restrike_and_velocity_zero_is_an_off() -> None:
    heard = analyse(stream((ON, 60, 90), (ON, 60, 0), (ON, 60, 70), (OFF, 60, 0)))
    assert heard.restrikes == [] and heard.note_ons == 2 and heard.note_offs == 2


def test_channels_are_apart_and_all_notes_off_ends_only_its_channel() -> None:
    heard = analyse(stream((ON, 60, 90), (ON | 1, 60, 90), (CC | 1, 123, 0), (ON | 2, 64, 90)))
    assert heard.restrikes == []
    assert heard.sounding == {(0, 60), (2, 64)}


@pytest.mark.jack
@pytest.mark.slow
def test_a_minute_of_duet_with_pedal_sysex_clock_and_a_vanishing_port(jack_server, tiny_model_file) -> None:
    result = run_soak(jack_server, 60.0, mode="duet", model=tiny_model_file, report_every_s=5.0,
                      port_gone_every_s=20.0, seed=7)
    report = summary(result) + "\n" + result.stderr_tail
    assert result.exit_code in (0, 143), report  # SIGTERM ends it as a signal would
    assert result.notes_in > 100 and result.heard.note_ons > 100, report  # it played, and improv answered
    assert result.port_returns >= 2 and result.ons_after_last_return > 0, report  # it reconnected each time
    assert result.heard.restrikes == [], report
    assert result.heard.sounding == set(), report
    assert result.rss_growth_mb < 50, report
