"""Answers in time with a MIDI clock, on a fake clock (the JACK version is in test_live_sync.py)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from test_engine import Clock, Port, run_until

from improv.live.clock import pulse_seconds
from improv.midi.status import CLOCK, CONTINUE, START, STOP
from improv.live.engine import Engine, EngineSettings, TransportChanged


class Band:
    """A drum machine's clock: pulses at ideal times plus jitter, pushed into the engine as they fall due."""

    def __init__(self, engine: Engine, clock: Clock, bpm: float, jitter_s: float = 0.001, seed: int = 0) -> None:
        self.engine, self.clock = engine, clock
        self.rng = random.Random(seed)
        self.jitter_s = jitter_s
        self.origin = clock.now + 0.01  # ideal time of pulse 0
        self.bpm = bpm
        self.pulse = 0
        self._next = self.origin
        engine.push([START], clock.now)

    def ideal(self, pulse: int) -> float:
        return self.origin + pulse * pulse_seconds(self.bpm)

    def set_tempo(self, bpm: float) -> None:
        """From the next pulse on, the band plays at `bpm` (the grid bends at that pulse)."""
        self.origin = self._next - self.pulse * pulse_seconds(bpm)
        self.bpm = bpm

    def run_until(self, t: float) -> None:
        while self.clock.now < t:
            self.clock.now = min(self.clock.now + 0.0005, t)
            while self._next <= self.clock.now:
                self.engine.push([CLOCK], self._next + self.rng.uniform(-self.jitter_s, self.jitter_s))
                self.pulse += 1
                self._next = self.ideal(self.pulse)
            self.engine.process(self.clock.now)

    def play(self, pitches: list[int], step_s: float = 0.2, hold_s: float = 0.15) -> None:
        for pitch in pitches:
            self.engine.push([0x90, pitch, 90], self.clock.now)
            self.run_until(self.clock.now + hold_s)
            self.engine.push([0x80, pitch, 0], self.clock.now)
            self.run_until(self.clock.now + step_s - hold_s)


def drain(engine: Engine) -> list[object]:
    out = []
    while not engine.events.empty():
        out.append(engine.events.get())
    return out


def grid_error_s(band: Band, t: float, division: int) -> float:
    """Distance from `t` to the band's nearest grid point of `division` pulses (ideal, no jitter)."""
    period = pulse_seconds(band.bpm) * division
    k = round((t - band.origin) / period)
    return abs(t - (band.origin + k * period))


def synced(tiny_model, **settings) -> tuple[Engine, Port, Clock]:
    clock = Clock()
    port = Port(clock)
    values = dict(gap_s=0.3, reply_notes=12, random_seed=4, sync="clock", quantize=6, reply_on="beat")
    values.update(settings)
    engine = Engine(tiny_model, port.send, EngineSettings(**values), clock=clock)
    return engine, port, clock


@pytest.mark.parametrize("bpm", [90.0, 140.0])
def test_answers_land_on_the_sixteenth_grid_and_start_on_a_beat(tiny_model, bpm: float) -> None:
    engine, port, clock = synced(tiny_model)
    band = Band(engine, clock, bpm, seed=int(bpm))
    band.run_until(clock.now + 2.0)  # the clock runs a while before the player comes in
    band.play([60, 64, 67, 72])
    answered_from = clock.now
    band.run_until(clock.now + 20.0)
    ons = [t for t, p in port.note_ons() if t > answered_from]
    assert len(ons) >= 6
    assert max(grid_error_s(band, t, 6) for t in ons) < 0.001
    assert grid_error_s(band, ons[0], 24) < 0.001  # the first note is on a beat
    assert port.balance() == Counter()
    assert engine.tempo_factor == pytest.approx((60 / bpm) / 0.5, rel=0.01)


def test_after_a_tempo_change_the_grid_follows_within_a_beat(tiny_model) -> None:
    engine, port, clock = synced(tiny_model, reply_notes=64, max_polyphony=1)
    band = Band(engine, clock, 90.0, seed=3)
    band.run_until(clock.now + 1.0)
    band.play([60, 62, 64])
    band.run_until(clock.now + 1.0)  # the answer is playing
    band.set_tempo(140.0)
    changed_at = clock.now
    band.run_until(clock.now + 12.0)
    beat = 60 / 140.0
    after = [t for t, _ in port.note_ons() if t > changed_at + beat]
    assert len(after) >= 4
    assert max(grid_error_s(band, t, 6) for t in after) < 0.002


def test_stop_silences_and_start_or_continue_resume(tiny_model) -> None:
    engine, port, clock = synced(tiny_model, reply_notes=64)
    band = Band(engine, clock, 120.0)
    band.run_until(clock.now + 1.0)
    band.play([60, 62, 64])
    band.run_until(clock.now + 1.0)
    assert port.note_ons()  # answering
    engine.push([STOP], clock.now)
    band.run_until(clock.now + 0.01)
    assert port.balance() == Counter()  # everything released at Stop
    stopped_count = len(port.note_ons())
    band.play([65, 67])  # the player plays on while the band is stopped: no answer
    band.run_until(clock.now + 2.0)
    assert len(port.note_ons()) == stopped_count
    engine.push([CONTINUE], clock.now)
    band.run_until(clock.now + 3.0)
    assert len(port.note_ons()) > stopped_count  # the waiting phrase is answered once the band plays
    transports = [e.transport for e in drain(engine) if isinstance(e, TransportChanged)]
    assert [t for t in transports if t.bpm and not t.running]  # the Stop, shown with the tempo it had
    assert transports[-1].running and transports[-1].bpm == pytest.approx(120.0, rel=0.01)


def test_no_clock_no_answer_in_sync_mode(tiny_model) -> None:
    engine, port, clock = synced(tiny_model)
    for i, pitch in enumerate([60, 62, 64]):
        engine.push([0x90, pitch, 90], clock.now + i * 0.2)
        engine.push([0x80, pitch, 0], clock.now + i * 0.2 + 0.1)
    run_until(engine, clock, clock.now + 3.0)
    assert port.note_ons() == []


def test_clock_out_sends_start_pulses_and_stop(tiny_model) -> None:
    clock = Clock()
    port = Port(clock)
    engine = Engine(tiny_model, port.send, EngineSettings(clock_out_bpm=120.0, random_seed=1), clock=clock)
    start = clock.now
    run_until(engine, clock, start + 2.0)
    engine.stop()
    statuses = [d[0] for _, d in port.sent]
    assert statuses[0] == START and statuses[-1] == STOP
    pulses = [t for t, d in port.sent if d[0] == CLOCK]
    first = pulses[0]
    assert first - start <= 0.0015  # the first pass of the loop
    assert len(pulses) == (start + 2.0 - first) // pulse_seconds(120.0) + 1
    assert max(abs(t - (first + k * pulse_seconds(120.0))) for k, t in enumerate(pulses)) <= 0.001


def test_sync_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="exclude"):
        EngineSettings(sync="clock", clock_out_bpm=120.0)
    with pytest.raises(ValueError, match="reply-on"):
        EngineSettings(reply_on="downbeat")
