"""Answers on an Ableton Link session's grid, on a fake clock with a fake session (no network at all).

The real binding, with peers, is in test_live_link.py, inside a private network namespace.
"""

from __future__ import annotations

import argparse
import copy
import io
import math
from collections import Counter

import pytest
from test_engine import Clock, Port, run_until

from improv.cli.play import HeadlessPrinter
from improv.config import Config, parse_config
from improv.errors import ConfigError
from improv.live import ableton_link
from improv.live.clock import Transport
from improv.live.engine import Engine, EngineSettings, Message, TransportChanged

LINK_CLOCK_OFFSET_S = 0.253  # Link's clock runs this far behind the engine's (as CLOCK_MONOTONIC_RAW does here)


class FakeState:
    """A Link session state: a timeline (tempo through an anchor) and a start/stop state, in Link's microseconds."""

    def __init__(self, bpm: float, anchor_us: int, anchor_beat: float = 0.0) -> None:
        self.bpm, self.anchor_us, self.anchor_beat = bpm, anchor_us, anchor_beat
        self.playing, self.changed_us = False, 0

    def tempo(self) -> float:
        return self.bpm

    def beatAtTime(self, time_us: int, quantum: float) -> float:  # noqa: N802 (the binding's names)
        return self.anchor_beat + (time_us - self.anchor_us) / 1e6 * self.bpm / 60

    def timeAtBeat(self, beat: float, quantum: float) -> float:  # noqa: N802
        return self.anchor_us + (beat - self.anchor_beat) * 60 / self.bpm * 1e6

    def phaseAtTime(self, time_us: int, quantum: float) -> float:  # noqa: N802
        return self.beatAtTime(time_us, quantum) % quantum

    def setTempo(self, bpm: float, time_us: int) -> None:  # noqa: N802
        self.anchor_beat, self.anchor_us, self.bpm = self.beatAtTime(time_us, 4), time_us, bpm

    def isPlaying(self) -> bool:  # noqa: N802
        return self.playing

    def timeForIsPlaying(self) -> int:  # noqa: N802
        return self.changed_us

    def setIsPlaying(self, playing: bool, time_us: int) -> None:  # noqa: N802
        self.playing, self.changed_us = playing, time_us


class FakeLinkClock:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def micros(self) -> int:
        return round((self.clock.now - LINK_CLOCK_OFFSET_S) * 1e6)


class FakeSession:
    """The binding's `Link`, as far as improv uses it; the test plays the other peers."""

    def __init__(self, clock: Clock, bpm: float) -> None:
        self._clock = FakeLinkClock(clock)
        self.state = FakeState(bpm, self._clock.micros())
        self.peers = 0
        self.enabled = False
        self.startStopSyncEnabled = False  # noqa: N815
        self.callbacks: dict[str, object] = {}
        self.commits = 0

    def clock(self) -> FakeLinkClock:
        return self._clock

    def numPeers(self) -> int:  # noqa: N802
        return self.peers

    def captureAppSessionState(self) -> FakeState:  # noqa: N802
        return copy.copy(self.state)

    def commitAppSessionState(self, state: FakeState) -> None:  # noqa: N802
        self.state = copy.copy(state)
        self.commits += 1

    def setStartStopCallback(self, callback) -> None:  # noqa: N802
        self.callbacks["start_stop"] = callback

    def setNumPeersCallback(self, callback) -> None:  # noqa: N802
        self.callbacks["peers"] = callback

    # -- what the other peers do --

    def micros(self, t: float) -> int:
        return round((t - LINK_CLOCK_OFFSET_S) * 1e6)

    def peer_sets_tempo(self, bpm: float, t: float) -> None:
        self.state.setTempo(bpm, self.micros(t))

    def peer_plays(self, playing: bool, t: float) -> None:
        self.state.setIsPlaying(playing, self.micros(t))

    def grid_error_s(self, t: float, division_beats: float, state: FakeState | None = None) -> float:
        """Distance of `t` from the session's nearest grid point (`state`: the timeline as it was then)."""
        state = state or self.state
        beats = state.beatAtTime(self.micros(t), 4) / division_beats
        return abs(beats - round(beats)) * division_beats * 60 / state.bpm


@pytest.fixture
def fake_link(monkeypatch):
    """`new_session` makes a FakeSession on the test's clock; returns the list of sessions made."""
    made: list[FakeSession] = []
    clock_holder: list[Clock] = []

    def new_session(bpm: float) -> FakeSession:
        session = FakeSession(clock_holder[0], bpm)
        made.append(session)
        return session

    monkeypatch.setattr(ableton_link, "new_session", new_session)
    return made, clock_holder


def linked(tiny_model, fake_link, **settings) -> tuple[Engine, Port, Clock, FakeSession]:
    made, clock_holder = fake_link
    clock = Clock()
    clock_holder.append(clock)
    port = Port(clock)
    values = dict(gap_s=0.3, reply_notes=12, random_seed=4, sync="link", quantize=12, reply_on="beat",
                  link_tempo_bpm=100.0)
    values.update(settings)
    engine = Engine(tiny_model, port.send, EngineSettings(**values), clock=clock)
    engine.timing.start(clock.now)
    return engine, port, clock, made[-1]


def play(engine: Engine, clock: Clock, pitches: list[int], step_s: float = 0.2, hold_s: float = 0.15) -> None:
    for pitch in pitches:
        engine.push([0x90, pitch, 90], clock.now)
        run_until(engine, clock, clock.now + hold_s)
        engine.push([0x80, pitch, 0], clock.now)
        run_until(engine, clock, clock.now + step_s - hold_s)


def drain(engine: Engine) -> list[object]:
    out = []
    while not engine.events.empty():
        out.append(engine.events.get())
    return out


# -- the grid ---------------------------------------------------------------------------


def test_the_grid_is_the_sessions_timeline_on_the_engines_clock(fake_link) -> None:
    made, holder = fake_link
    clock = Clock()
    holder.append(clock)
    grid = ableton_link.LinkGrid(ableton_link.new_session(100.0), 4, clock)
    grid.refresh()
    session = made[0]
    beat_s = 60 / 100.0
    assert grid.pulse_s == pytest.approx(beat_s / 24)
    assert grid.pulse_at(clock.now) == pytest.approx(0.0, abs=1e-3)
    assert grid.time_of(24 * 3) == pytest.approx(clock.now + 3 * beat_s, abs=1e-6)  # the offset is taken out
    assert grid.pulse_at(grid.time_of(37.5)) == pytest.approx(37.5, abs=1e-3)
    clock.now += 2.5 * beat_s
    transport = grid.transport(clock.now)
    assert (transport.bar, transport.beat, transport.beats_per_bar, transport.peers) == (1, 3, 4, 0)
    assert transport.bpm == pytest.approx(100.0) and transport.running  # nobody ever started or stopped it
    session.peer_plays(False, clock.now)  # a peer stopped it: a joiner was never told it played, only the stop's time
    grid.refresh()
    assert not grid.running_at(clock.now)
    session.peer_plays(True, clock.now + 0.1)  # ... and starts it again 100 ms from now
    grid.refresh()
    assert not grid.running_at(clock.now + 0.05) and grid.running_at(clock.now + 0.1)


def test_nudging_the_tempo_moves_the_session_without_a_jump_in_the_beat(fake_link) -> None:
    made, holder = fake_link
    clock = Clock()
    holder.append(clock)
    grid = ableton_link.LinkGrid(ableton_link.new_session(100.0), 4, clock)
    grid.refresh()
    clock.now += 1.0
    beat_before = grid.pulse_at(clock.now)
    assert grid.set_tempo(101.0, clock.now) == 101.0
    assert made[0].state.tempo() == 101.0 and made[0].commits == 1  # the session's, for every peer
    assert grid.pulse_at(clock.now) == pytest.approx(beat_before, abs=1e-3)
    assert grid.set_tempo(1000.0, clock.now) == 400.0  # held to the tempo range


# -- the engine on the grid ------------------------------------------------------------


@pytest.mark.parametrize("reply_on", ["beat", "bar"])
def test_answers_land_on_the_sessions_eighth_grid(tiny_model, fake_link, reply_on: str) -> None:
    engine, port, clock, session = linked(tiny_model, fake_link, reply_on=reply_on, link_quantum=3)
    assert session.enabled and session.startStopSyncEnabled
    run_until(engine, clock, clock.now + 1.0)
    play(engine, clock, [60, 64, 67, 72])
    answered_from = clock.now
    run_until(engine, clock, clock.now + 15.0)
    ons = [t for t, _ in port.note_ons() if t > answered_from]
    assert len(ons) >= 6
    assert max(session.grid_error_s(t, 0.5) for t in ons) < 1e-5
    assert session.grid_error_s(ons[0], 1.0 if reply_on == "beat" else 3.0) < 1e-5  # a beat, or a bar of 3
    assert port.balance() == Counter()
    assert engine.tempo_factor == pytest.approx((60 / 100.0) / 0.5, rel=0.01)
    assert session.commits == 0  # improv never set the session's tempo


def test_a_peers_tempo_change_is_followed_from_the_next_grid_point(tiny_model, fake_link) -> None:
    engine, port, clock, session = linked(tiny_model, fake_link, reply_notes=64, max_polyphony=1)
    run_until(engine, clock, clock.now + 1.0)
    play(engine, clock, [60, 62, 64])
    run_until(engine, clock, clock.now + 1.0)  # answering at 100
    before = len(port.note_ons())
    session.peer_sets_tempo(132.0, clock.now)
    changed_at = clock.now
    run_until(engine, clock, clock.now + 12.0, step=0.0005)  # a 132 BPM eighth is no whole number of steps
    after = [t for t, _ in port.note_ons()[before:] if t > changed_at + engine.settings.lookahead_s]
    assert len(after) >= 4
    assert max(session.grid_error_s(t, 0.5) for t in after) <= 0.0005  # sent at the first pass after its time
    assert session.state.tempo() == 132.0 and session.commits == 0  # where the peer put it
    assert engine.tempo_factor == pytest.approx((60 / 132.0) / 0.5, rel=0.01)
    assert [e for e in drain(engine) if isinstance(e, TransportChanged)][-1].transport.bpm == pytest.approx(132.0)


def test_the_sessions_stop_silences_the_answer_and_its_start_lets_answers_come(tiny_model, fake_link) -> None:
    engine, port, clock, session = linked(tiny_model, fake_link, reply_notes=64)
    session.peer_plays(True, clock.now)
    run_until(engine, clock, clock.now + 1.0)
    play(engine, clock, [60, 62, 64])
    run_until(engine, clock, clock.now + 1.0)
    assert port.note_ons()  # answering
    session.peer_plays(False, clock.now)
    stopped_at = clock.now
    run_until(engine, clock, clock.now + 0.002)
    assert port.balance() == Counter()  # every note released at the stop
    stopped_count = len(port.note_ons())
    play(engine, clock, [65, 67])  # the player plays on while the session is stopped: no answer
    run_until(engine, clock, clock.now + 2.0)
    assert len(port.note_ons()) == stopped_count
    assert all(t <= stopped_at for t, _ in port.note_ons())
    session.peer_plays(True, clock.now)
    run_until(engine, clock, clock.now + 3.0)
    assert len(port.note_ons()) > stopped_count  # the waiting phrase is answered once the session plays
    transports = [e.transport for e in drain(engine) if isinstance(e, TransportChanged)]
    assert [t for t in transports if not t.running] and transports[-1].running


def test_a_peers_stop_wakes_the_engine(tiny_model, fake_link) -> None:
    """Link calls back on its own thread: the engine's loop is woken at once, not at its next 50 ms pass."""
    engine, _, _, session = linked(tiny_model, fake_link)
    assert engine._input.empty()
    session.callbacks["start_stop"](False)
    session.callbacks["peers"](1)
    assert engine._input.qsize() == 2 and engine.dropped_input == 0


def test_the_tempo_key_nudges_the_session_and_nothing_else_does(tiny_model, fake_link) -> None:
    engine, _, clock, session = linked(tiny_model, fake_link)
    run_until(engine, clock, clock.now + 0.5)
    engine.command("tempo_step", 1)
    run_until(engine, clock, clock.now + 0.1)
    assert session.state.tempo() == 101.0 and session.commits == 1
    assert "Link session tempo 101.0 BPM" in [e.text for e in drain(engine) if isinstance(e, Message)]


def test_without_link_the_tempo_key_says_why_it_does_nothing(tiny_model) -> None:
    clock = Clock()
    engine = Engine(tiny_model, Port(clock).send, EngineSettings(), clock=clock)
    engine.command("tempo_step", 1)
    run_until(engine, clock, clock.now + 0.01)
    assert [e.text for e in drain(engine) if isinstance(e, Message)] == [
        "no shared tempo to nudge: start improv with --sync link"]


def test_peers_joining_are_told_to_the_front_end(tiny_model, fake_link) -> None:
    engine, _, clock, session = linked(tiny_model, fake_link)
    run_until(engine, clock, clock.now + 0.1)
    session.peers = 2
    run_until(engine, clock, clock.now + 0.01)
    transport = [e for e in drain(engine) if isinstance(e, TransportChanged)][-1].transport
    assert transport.peers == 2 and transport.bpm == pytest.approx(100.0)


def test_leaving_disables_link(tiny_model, fake_link) -> None:
    engine, _, _, session = linked(tiny_model, fake_link)
    engine.stop()
    assert not session.enabled


# -- settings, config, command line, headless lines ---------------------------------------


def test_link_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="exclude"):
        EngineSettings(sync="link", clock_out_bpm=120.0)
    with pytest.raises(ValueError, match="link-quantum must be 1-16"):
        EngineSettings(sync="link", link_quantum=0)
    with pytest.raises(ValueError, match="link-tempo tempo must be 20-400 BPM"):
        EngineSettings(sync="link", link_tempo_bpm=math.nan)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"link_tempo": 10.0}, "link_tempo must be a tempo of 20-400 BPM, got 10.0"),
        ({"link_tempo": "fast"}, "link_tempo must be a tempo of 20-400 BPM, got 'fast'"),
        ({"link_quantum": 0}, "link_quantum must be 1-16, got 0"),
        ({"link_quantum": 2.5}, "link_quantum must be an integer 1-16, got 2.5"),
    ],
)
def test_link_config_validates_on_construction(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(**overrides)  # type: ignore[arg-type]


def test_link_config_keys_are_read_from_the_file() -> None:
    config = parse_config("[engine]\nlink_tempo = 96\nlink_quantum = 3\n")
    assert (config.link_tempo, config.link_quantum) == (96.0, 3)
    assert (Config().link_tempo, Config().link_quantum) == (120.0, 4)


def test_link_options_come_from_the_command_line_over_the_config(monkeypatch) -> None:
    from improv.cli import build_parser
    from improv.live.session import settings_from

    monkeypatch.setattr(ableton_link, "check_available", lambda: None)
    config = Config(link_tempo=96.0, link_quantum=3)
    args = build_parser().parse_args(["--sync", "link", "--link-tempo", "110"])
    settings = settings_from(args, config)
    assert (settings.sync, settings.link_tempo_bpm, settings.link_quantum) == ("link", 110.0, 3)
    args = build_parser().parse_args(["--sync", "link", "--link-quantum", "7"])
    assert settings_from(args, config).link_quantum == 7
    with pytest.raises(ConfigError, match="--link-quantum must be 1-16 beats, got 40"):
        settings_from(build_parser().parse_args(["--sync", "link", "--link-quantum", "40"]), config)


def test_without_the_binding_link_is_a_one_line_error(monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_link(name, *args, **kwargs):
        if name == "link":
            raise ImportError("No module named 'link'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_link)
    with pytest.raises(ConfigError, match=r"--sync link needs Ableton Link: pip install 'improv\[link\]'"):
        ableton_link.check_available()


def test_headless_says_peers_tempo_and_start_stop() -> None:
    out = io.StringIO()
    printer = HeadlessPrinter(out)
    for transport in [
        Transport(100.0, True, 1, 1, 4, False, 0),
        Transport(100.0, True, 1, 2, 4, False, 1),
        Transport(132.0, True, 1, 3, 4, False, 1),
        Transport(132.0, False, 1, 3, 4, False, 1),
        Transport(132.0, True, 2, 1, 4, False, 1),
    ]:
        printer.show(TransportChanged(transport))
    assert out.getvalue().splitlines() == [
        "link: 0 peers", "link running at 100.0 BPM", "link: 1 peer", "link tempo 132.0 BPM",
        "link stopped at 132.0 BPM", "link running at 132.0 BPM",
    ]


def test_the_parser_knows_link() -> None:
    from improv.cli import build_parser

    args = build_parser().parse_args(["--sync", "link", "--link-quantum", "3", "--link-tempo", "90"])
    assert isinstance(args, argparse.Namespace)
    assert (args.sync, args.link_quantum, args.link_tempo) == ("link", 3, 90.0)


def test_the_screen_shows_peers_tempo_and_the_beat_in_the_bar() -> None:
    from improv.tui.status import link_text

    assert link_text(None).plain == "link: joining"
    assert link_text(Transport(100.0, True, 3, 3, 4, False, 2)).plain == "link 2 peers 100.0 BPM beat 3 ··●·"
    assert link_text(Transport(132.0, False, 3, 1, 3, False, 1)).plain == "link 1 peer 132.0 BPM stopped"


def test_the_tempo_keys_send_the_nudge() -> None:
    from improv.tui.keys import KEY_COMMANDS

    bound = {c.keys: c.action for c in KEY_COMMANDS}
    assert bound["minus"] == "tempo(-1)" and bound["equals_sign,plus"] == "tempo(1)"
