"""The terminal UI: every key through Textual's pilot, against a real engine on an in-process port; snapshots."""

from __future__ import annotations

import asyncio
import functools
import io
import queue
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from improv.config import load_config, save_config
from improv.controls.control_map import ControlMap
from improv.controls.actions import Action, Learned, Source
from improv.live.engine import Engine, EngineSettings, NotePlayed, PlayerNoteOn, ReplyDone, StateChanged
from improv.errors import PortError
from improv.model.rolling_seed import estimate_key
from improv.midi.files import read_midi_tracks, track_names
from improv.tui.app import ImprovApp
from improv.tui.keys import KEY_COMMANDS
from improv.tui.computer_piano import NOTE_S, ComputerPiano, note_name
from improv.tui.readouts import LatencyStats, gauge, source_name, temperature_fraction
from improv.live.recording import IMPROV, PLAYER, Recording
from improv.tui.screens import LEARN_CHOICES, HelpScreen, LearnPicker, PortPicker, help_table
from improv.tui.widgets import PianoRoll, PitchWindow, fit_pitches, roll_cells

PHRASE = [60, 62, 64, 65, 67, 65, 64, 62]
# Silence that ends a phrase in tests that need the whole phrase before the answer: long enough
# that a stalled event loop on a loaded machine never splits the phrase (CI once answered after
# the third of four notes with 0.15 s).
PHRASE_GAP_S = 0.4


def async_test(test: Callable[..., Any]) -> Callable[..., Any]:
    """Run an async test in its own event loop (pilot tests need one; no asyncio plugin is required)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(test(*args, **kwargs))

    return run


# -- an in-process session --------------------------------------------------------------------


class FakePort:
    def __init__(self, name: str, virtual: bool = False) -> None:
        self.port_name = name
        self.virtual = virtual
        self.dropped = 0

    @property
    def description(self) -> str:
        return f"{self.port_name} (virtual)" if self.virtual else f"{self.port_name} connected"


class FakeSession:
    """What `LiveSession` offers the app, with the output recorded in `sent` and the ports made up."""

    INPUTS = ["keys:out", "piano:midi_out"]
    OUTPUTS = ["synth:in", "sampler:midi_in"]

    def __init__(self, model, config_path: Path, *, start: bool = True, ports: bool = True,
                 clock: Callable[[], float] = time.monotonic, **settings: Any) -> None:
        self.sent: list[tuple[int, ...]] = []
        self.input = FakePort("keys:out") if ports else None
        self.output = FakePort("synth:in") if ports else None
        self.problems: list[str] = [] if ports else ["no MIDI output: cannot use the ALSA sequencer",
                                                     "no MIDI input: cannot use the ALSA sequencer"]
        self.config_path = config_path
        self.control_map = ControlMap()
        self.engine = Engine(model, self.sent.append, EngineSettings(random_seed=5, **settings), self.control_map,
                             clock=clock)
        self.messages: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.api = "jack"
        self.unsent = 0
        self.switched: list[tuple[str, str | None, str | None]] = []
        self.list_error: str | None = None
        self.closed = False
        self.synth: Any = None
        self.soundfont: Path | None = None  # what --synth would find; None: no SoundFont anywhere
        if start:
            self.engine.start()

    def start_synth(self) -> str:
        from improv.errors import SynthError
        from improv.sound.synth import Synth

        if self.soundfont is None:
            raise SynthError("no SoundFont found; install one: sudo apt install fluid-soundfont-gm")
        self.synth = Synth(self.soundfont, audio_driver="memory")
        self.engine.set_tap(lambda tag, data: self.synth and self.synth.send(data))
        return f"{self.soundfont.name} via memory"

    def stop_synth(self) -> None:
        synth, self.synth = self.synth, None
        if synth is not None:
            synth.close()

    def list_ports(self, api: str | None = None) -> tuple[list[str], list[str]]:
        if self.list_error:
            raise PortError(self.list_error)
        return list(self.INPUTS), list(self.OUTPUTS)

    def switch_input(self, spec: str | None, api: str | None = None) -> str:
        self.switched.append(("input", spec, api))
        self.input = FakePort(spec or "improv:in", virtual=spec is None)
        return self.input.description

    def switch_output(self, spec: str | None, api: str | None = None) -> str:
        self.switched.append(("output", spec, api))
        self.output = FakePort(spec or "improv:out", virtual=spec is None)
        return self.output.description

    def save_learned(self, learned: Learned) -> Path:
        from improv.config import load_config

        self.control_map = self.control_map.with_mapping(*learned)
        return save_config(load_config(self.config_path).with_mapping(*learned), self.config_path)

    def silence(self) -> None:
        self.engine.stop()

    def close(self) -> None:
        self.closed = True
        self.engine.stop()

    # what the synth heard
    def note_ons(self) -> list[int]:
        return [d[1] for d in self.sent if d[0] & 0xF0 == 0x90 and d[2] > 0]

    def balance(self) -> Counter:
        count: Counter = Counter()
        for d in list(self.sent):
            if d[0] & 0xF0 == 0x90 and d[2] > 0:
                count[(d[0] & 0x0F, d[1])] += 1
            elif d[0] & 0xF0 == 0x80 or (d[0] & 0xF0 == 0x90 and d[2] == 0):
                count[(d[0] & 0x0F, d[1])] -= 1
        return +count

    def all_notes_off_sent(self) -> int:
        return sum(1 for d in list(self.sent) if d[0] & 0xF0 == 0xB0 and d[1] == 123)


@pytest.fixture
def make_session(tiny_model, tmp_path):
    sessions: list[FakeSession] = []

    def make(**kwargs: Any) -> FakeSession:
        session = FakeSession(tiny_model, tmp_path / "config.toml", **kwargs)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


def make_app(session: FakeSession, tmp_path: Path, **kwargs: Any) -> ImprovApp:
    return ImprovApp(session, sessions_dir=tmp_path / "sessions", apis=["alsa", "jack"], **kwargs)


async def wait_until(pilot, predicate: Callable[[], object], timeout_s: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.02)


async def play(session: FakeSession, pitches: Sequence[int], step_s: float = 0.08, hold_s: float = 0.06) -> None:
    """A phrase through the engine's input, as a MIDI keyboard would send it."""
    engine = session.engine
    for pitch in pitches:
        engine.push([0x90, pitch, 90], engine.clock())
        await asyncio.sleep(hold_s)
        engine.push([0x80, pitch, 0], engine.clock())
        await asyncio.sleep(step_s - hold_s)


async def start_an_answer(pilot: Any, session: FakeSession) -> None:
    """Play a short phrase and wait until improv's answer is sounding."""
    await play(session, PHRASE[:4])
    await wait_until(pilot, lambda: len(session.note_ons()) >= 2, what="the answer started")


def answered(seen: Sequence[object]) -> bool:
    """An answer ran to its end (one cut short by the player does not count)."""
    return any(isinstance(e, ReplyDone) and not e.interrupted for e in seen)


def seen_events(app: ImprovApp) -> list[object]:
    """Every engine event the app handles from now on, in order."""
    seen: list[object] = []
    handle = app.handle_event

    def record(event: object) -> None:
        seen.append(event)
        handle(event)

    app.handle_event = record  # type: ignore[method-assign]
    return seen


def screen_text(app: ImprovApp) -> str:
    return "\n".join([app._ports.text, app._state.text, app._temperature.text, app._latency.text, app.status_text])


# -- every key -----------------------------------------------------------------------------------


@async_test
async def test_space_pauses_and_listens_again(make_session, tmp_path) -> None:
    session = make_session()
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        await pilot.press("space")
        await wait_until(pilot, lambda: session.engine.paused and app.paused, what="paused")
        assert "PAUSED" in screen_text(app)
        await pilot.press("space")
        await wait_until(pilot, lambda: not session.engine.paused and not app.paused, what="listening")
        assert "listening" in screen_text(app)


@async_test
async def test_arrows_and_brackets_step_the_temperature(make_session, tmp_path) -> None:
    session = make_session()
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        assert "temperature 1.00" in screen_text(app)
        await pilot.press("up")
        await wait_until(pilot, lambda: "temperature 1.05" in screen_text(app), what="1.05")
        assert session.engine.temperature == pytest.approx(1.05)
        await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: session.engine.temperature == pytest.approx(1.10), what="1.10")
        await pilot.press("down", "down", "left_square_bracket")
        await wait_until(pilot, lambda: session.engine.temperature == pytest.approx(0.95), what="0.95")
        await wait_until(pilot, lambda: "temperature 0.95" in screen_text(app), what="0.95 shown")


@async_test
async def test_full_stop_and_comma_step_the_follow_amount(make_session, tmp_path) -> None:
    session = make_session()
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        assert "follow 0.00" in screen_text(app)
        await pilot.press("full_stop", "full_stop", "full_stop")
        await wait_until(pilot, lambda: session.engine.follow == pytest.approx(0.3), what="0.3")
        await wait_until(pilot, lambda: "follow 0.30" in screen_text(app), what="0.30 shown")
        await pilot.press("comma")
        await wait_until(pilot, lambda: session.engine.follow == pytest.approx(0.2), what="0.2")


@async_test
async def test_tempo_and_beat_of_a_midi_clock_are_shown(make_session, tmp_path) -> None:
    session = make_session(sync="clock")
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        assert "waiting for MIDI clock" in screen_text(app)
        engine = session.engine
        start = engine.clock() - 3.0
        engine.push([0xFA], start)
        for k in range(24 * 5 + 1):  # five beats at 100 BPM, as a drum machine sent them until now
            engine.push([0xF8], start + k * 0.025)
        await wait_until(pilot, lambda: "clock 100.0 BPM bar 2 beat 2" in screen_text(app), what="tempo and beat")
        engine.push([0xFC], engine.clock())
        await wait_until(pilot, lambda: "clock 100.0 BPM stopped" in screen_text(app), what="stopped")


@async_test
async def test_a_turns_the_built_in_synth_on_and_off(make_session, tmp_path, soundfont) -> None:
    session = make_session()
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        await pilot.press("a")
        await wait_until(pilot, lambda: "no synth: no SoundFont found" in app.status_text, what="one-line error")
        assert session.synth is None and app.is_running
        session.soundfont = soundfont
        await pilot.press("a")
        await wait_until(pilot, lambda: session.synth is not None, what="synth on")
        await wait_until(pilot, lambda: "audio 0.0 ms" in screen_text(app), what="audio latency shown (none in memory)")
        synth = session.synth
        await pilot.press("a")
        await wait_until(pilot, lambda: session.synth is None, what="synth off")
        assert synth.closed and "synth off" in app.status_text


@async_test
async def test_a_synth_that_cannot_start_is_a_message_not_a_crash(make_session, tmp_path) -> None:
    session = make_session()
    session.problems = ["no synth: no SoundFont found; install one: sudo apt install fluid-soundfont-gm"]
    app = make_app(session, tmp_path)
    async with app.run_test():
        assert app.status_text.startswith("! no synth (a retries): no SoundFont found")
        assert app.is_running


@async_test
async def test_m_switches_between_call_and_duet(make_session, tmp_path) -> None:
    session = make_session()
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        await pilot.press("m")
        await wait_until(pilot, lambda: session.engine.mode == "duet" and "mode duet" in screen_text(app))
        await pilot.press("m")
        await wait_until(pilot, lambda: session.engine.mode == "call" and "mode call" in screen_text(app))


LEARN_CASES = [
    (Action.TEMPERATURE, [0xB0, 74, 100], Source.cc(74), "CC74"),
    (Action.PANIC, [0x99, 36, 100], Source.note(36), None),
    (Action.MODE, [0xB1, 80, 127], Source.cc(80), None),
    (Action.RESET, [0xB0, 81, 127], Source.cc(81), None),
]


@pytest.mark.parametrize("action, message, source, shown", LEARN_CASES, ids=[c[0].value for c in LEARN_CASES])
@async_test
async def test_l_learns_a_control_and_saves_it_in_the_config(make_session, tmp_path, action, message, source,
                                                             shown) -> None:
    session = make_session()
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, LearnPicker), what="learn picker")
        choices = [choice for choice, _ in LEARN_CHOICES]
        await pilot.press(*["down"] * choices.index(action), "enter")
        await wait_until(pilot, lambda: session.engine.learner is not None, what="learner armed")
        assert f"learning {action.value}" in screen_text(app)
        session.engine.push(message, session.engine.clock())
        await wait_until(pilot, lambda: session.config_path.exists(), what="config saved")
        await wait_until(pilot, lambda: "saved to" in app.status_text)
    assert load_config(session.config_path).controls[action] == source
    assert session.engine.controls.source(action) == source
    if shown:
        assert shown in screen_text(app)


@async_test
async def test_l_twice_cancels_learning(make_session, tmp_path) -> None:
    session = make_session()
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        await pilot.press("l", "enter")
        await wait_until(pilot, lambda: session.engine.learner is not None, what="learner armed")
        await pilot.press("l")
        await wait_until(pilot, lambda: session.engine.learner is None, what="learner disarmed")
        assert "cancelled" in app.status_text


@async_test
async def test_p_lists_ports_and_switches_input_and_output(make_session, tmp_path) -> None:
    session = make_session()
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, PortPicker), what="port picker")
        await pilot.press("down", "down", "enter")  # inputs: virtual, keys:out, piano:midi_out
        await wait_until(pilot, lambda: session.switched, what="input switched")
        await pilot.press("tab", "down", "down", "enter")  # outputs: virtual, synth:in, sampler:midi_in
        await wait_until(pilot, lambda: len(session.switched) == 2, what="output switched")
        await pilot.press("tab", "home", "enter")  # back to the inputs: the virtual port
        await wait_until(pilot, lambda: len(session.switched) == 3, what="input back to virtual")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, PortPicker))
        assert session.switched == [("input", "piano:midi_out", "jack"), ("output", "sampler:midi_in", "jack"),
                                    ("input", None, "jack")]
        await wait_until(pilot, lambda: "out sampler:midi_in connected" in screen_text(app))
        assert "in improv:in (virtual)" in screen_text(app)


@async_test
async def test_without_ports_the_app_opens_explains_and_offers_the_picker(make_session, tmp_path) -> None:
    session = make_session(ports=False)
    session.list_error = "cannot use the ALSA sequencer (/dev/snd/seq does not exist)"
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        assert "no MIDI input or output (press p): cannot use the ALSA sequencer" in app.status_text
        assert "in none (press p)" in screen_text(app)
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, PortPicker))
        message = str(app.screen.query_one("#port-message").content)
        assert "/dev/snd/seq does not exist" in message
        session.list_error = None
        await pilot.press("a")  # another API: this one lists ports
        await wait_until(pilot, lambda: "now:" in str(app.screen.query_one("#port-message").content))
        await pilot.press("tab", "enter")
        await wait_until(pilot, lambda: session.switched == [("output", None, "alsa")])


@async_test
async def test_r_rerolls_the_last_answer_from_the_same_seed(make_session, tmp_path) -> None:
    session = make_session(gap_s=PHRASE_GAP_S, reply_notes=6, temperature=2.0)
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        seen = seen_events(app)
        await pilot.press("r")
        await wait_until(pilot, lambda: "nothing to re-roll" in app.status_text)
        await play(session, PHRASE[:4])
        await wait_until(pilot, lambda: answered(seen), what="first answer")
        await pilot.press("r")
        await wait_until(pilot, lambda: any(isinstance(e, ReplyDone) and e.rerolled for e in seen), what="re-roll")
    first, again = [e for e in seen if isinstance(e, ReplyDone)][:2]
    assert again.rerolled and not first.rerolled
    assert again.notes == first.notes == 6
    assert again.pitches != first.pitches
    improv_notes = [n for n in app.recording.notes if n.who == IMPROV]
    assert len(improv_notes) == 12


@async_test
async def test_s_saves_the_session_as_two_tracks(make_session, tmp_path) -> None:
    session = make_session(gap_s=PHRASE_GAP_S, reply_notes=4)
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        await pilot.press("s")
        assert "nothing to save" in app.status_text
        seen = seen_events(app)
        await play(session, PHRASE[:4])
        await wait_until(pilot, lambda: answered(seen), what="answer")
        await pilot.press("s")
        await wait_until(pilot, lambda: "saved" in app.status_text)
    files = list((tmp_path / "sessions").glob("session-*.mid"))
    assert len(files) == 1 and str(files[0]) in app.status_text
    assert track_names(files[0]) == [PLAYER, IMPROV]
    tracks = read_midi_tracks(files[0])
    assert [n.pitch for n in tracks[PLAYER]] == PHRASE[:4]
    assert len(tracks[IMPROV]) == 4
    assert min(n.start for part in tracks.values() for n in part) == pytest.approx(0.0, abs=1e-3)
    assert tracks[IMPROV][0].start > tracks[PLAYER][-1].start


@async_test
async def test_c_clears_the_seed(make_session, tmp_path) -> None:
    session = make_session(gap_s=5.0)
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        await play(session, PHRASE[:3])
        await wait_until(pilot, lambda: len(session.engine.improviser.seed) >= 2, what="seed fed")
        await pilot.press("c")
        await wait_until(pilot, lambda: len(session.engine.improviser.seed) == 0, what="seed cleared")
        assert "seed cleared" in app.status_text


@async_test
async def test_k_locks_the_key_of_the_last_notes_and_unlocks(make_session, tmp_path) -> None:
    session = make_session(gap_s=5.0)
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        await pilot.press("k")
        await wait_until(pilot, lambda: "play at least" in app.status_text)
        await play(session, [60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60])
        await pilot.press("k")
        await wait_until(pilot, lambda: session.engine.constraints.key == (0, "major"), what="C major")
        await wait_until(pilot, lambda: "key C:major (locked)" in screen_text(app))
        assert "key locked to C:major" in app.status_text
        await pilot.press("k")
        await wait_until(pilot, lambda: session.engine.constraints.key is None, what="unlocked")
        await wait_until(pilot, lambda: "key free" in screen_text(app))


@pytest.mark.parametrize("key", ["escape", "exclamation_mark"])
@async_test
async def test_escape_and_bang_send_all_notes_off_at_once(make_session, tmp_path, key) -> None:
    session = make_session(gap_s=0.1, reply_notes=200, max_hold_s=30.0)
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        await start_an_answer(pilot, session)
        await pilot.press(key)
        assert session.all_notes_off_sent() >= 1  # sent from the key press itself, not later
        assert "panic" in app.status_text
        await wait_until(pilot, lambda: session.balance() == Counter() and not session.engine.output.busy("reply"),
                         what="the answer stopped")
        count = len(session.note_ons())
        await pilot.pause(0.3)
        assert len(session.note_ons()) == count  # the answer was stopped, not just silenced


@pytest.mark.parametrize("key", ["q", "ctrl+c"])
@async_test
async def test_q_and_ctrl_c_quit_releasing_every_note_first(make_session, tmp_path, key) -> None:
    session = make_session(gap_s=0.1, reply_notes=200, max_hold_s=30.0)
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        await start_an_answer(pilot, session)
        await pilot.press(key)
        assert session.closed
    assert app.return_code == 0
    assert session.balance() == Counter()
    assert session.all_notes_off_sent() >= 1
    assert not session.engine.running


@async_test
async def test_ctrl_c_quits_also_while_the_letters_play_the_piano(make_session, tmp_path) -> None:
    session = make_session(gap_s=5.0)
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        await pilot.press("tab", "q")  # q is not a piano key, and not quit while the piano is on
        await pilot.pause(0.1)
        assert app.piano_on and not session.closed
        await pilot.press("ctrl+c")
        assert session.closed
    assert app.return_code == 0


@async_test
async def test_the_start_up_hint_goes_once_the_player_is_heard(make_session, tmp_path) -> None:
    session = make_session(gap_s=5.0)
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        assert "play a phrase and pause" in app.status_text
        await play(session, [60])
        await wait_until(pilot, lambda: app.status_text == "", what="the hint cleared")


@async_test
async def test_tab_turns_the_letters_into_a_piano(make_session, tmp_path) -> None:
    session = make_session(gap_s=5.0)
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        seen = seen_events(app)
        await pilot.press("tab")
        assert app.piano_on and "piano on" in screen_text(app)
        started = time.monotonic()
        await pilot.press("a")
        await wait_until(pilot, lambda: session.note_ons() == [60], what="the key sounds on the output")
        await wait_until(pilot, lambda: session.balance() == Counter(), what="the note ends by itself")
        assert time.monotonic() - started >= NOTE_S - 0.02
        await pilot.press("x")
        assert "a = C5" in app.status_text and "a = C5" in screen_text(app)  # the status too, not only the state line
        await pilot.press("s", "w")  # an octave up: D5, then C#5; s plays instead of saving
        await wait_until(pilot, lambda: len([e for e in seen if isinstance(e, NotePlayed)]) == 3)
        assert session.engine.mode == "call"
        await pilot.press("m")  # not a piano key, and no command while the piano is on
        await pilot.pause(0.15)
        assert session.engine.mode == "call"
        await pilot.press("tab", "m")
        await wait_until(pilot, lambda: session.engine.mode == "duet")
    played = [e for e in seen if isinstance(e, NotePlayed) and e.who == PLAYER]  # (duet may answer at the end)
    assert [e.pitch for e in played] == [60, 74, 73]
    assert played[0].duration == pytest.approx(NOTE_S, abs=0.1)
    assert not list((tmp_path / "sessions").glob("*.mid"))
    assert [n.pitch for n in app.recording.notes if n.who == PLAYER] == [60, 74, 73]


@async_test
async def test_question_mark_shows_every_key(make_session, tmp_path) -> None:
    session = make_session(start=False)
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, HelpScreen))
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(help_table())
    listed = console.export_text()
    for command in KEY_COMMANDS:
        assert command.shown in listed and command.help[:30] in listed


# -- the screen follows the engine ---------------------------------------------------------------------


@async_test
async def test_both_players_notes_reach_the_roll_and_the_latency_panel(make_session, tmp_path) -> None:
    session = make_session(gap_s=PHRASE_GAP_S, reply_notes=5)
    app = make_app(session, tmp_path)
    async with app.run_test() as pilot:
        seen = seen_events(app)
        await play(session, PHRASE[:4])
        await wait_until(pilot, lambda: answered(seen), what="answer")
        await pilot.pause(0.1)
        roll = app._roll
        kinds = {note.who for note in roll.visible_notes()}
        assert kinds == {PLAYER, IMPROV}
        rendered = roll.render().plain
        assert "█" in rendered and "▒" in rendered
        assert "reply - ms" not in screen_text(app) and "median -" not in screen_text(app)
        assert "surprise - nats" not in screen_text(app)


@async_test
async def test_a_flood_of_events_is_taken_a_tick_at_a_time(make_session, tmp_path) -> None:
    session = make_session(start=False)
    for i in range(12_000):
        session.engine.events.put(NotePlayed(IMPROV, 60 + i % 12, 80, 1000.0 + i * 0.001, 0.01))
    app = make_app(session, tmp_path, clock=lambda: 1013.0)
    async with app.run_test() as pilot:
        await wait_until(pilot, lambda: len(app.recording) == 12_000)
        assert session.engine.events.empty()


@async_test
async def test_an_exception_in_a_widget_still_releases_every_note(make_session, tmp_path, monkeypatch) -> None:
    session = make_session(gap_s=0.1, reply_notes=200, max_hold_s=30.0)
    app = make_app(session, tmp_path)
    with pytest.raises(RuntimeError, match="widget broke"):
        async with app.run_test() as pilot:
            await start_an_answer(pilot, session)

            def broken(self: PianoRoll) -> None:
                raise RuntimeError("widget broke")

            monkeypatch.setattr(PianoRoll, "render", broken)
            app._roll.refresh()
            await pilot.pause(0.5)
    assert session.closed
    assert session.balance() == Counter()
    assert session.all_notes_off_sent() >= 1


# -- a real session on a JACK server -------------------------------------------------------------------


async def pick(pilot, app: ImprovApp, list_id: str, port: str) -> None:
    """Highlight `port` in the picker's list `list_id` with the arrow keys and press enter."""
    from textual.widgets import OptionList

    option_list = app.screen.query_one(list_id, OptionList)
    await wait_until(pilot, lambda: port in [option_list.get_option_at_index(i).id
                                             for i in range(option_list.option_count)], what=f"{port} listed")
    index = [option_list.get_option_at_index(i).id for i in range(option_list.option_count)].index(port)
    option_list.focus()
    await pilot.press("home", *["down"] * index, "enter")


@async_test
async def test_the_port_picker_switches_real_jack_ports_while_playing(jack_server, tiny_model_file, tmp_path) -> None:
    from improv.cli import build_parser
    from support.jack_server import MidiRecorder, open_midi_out, open_virtual, unique_client_name
    from improv.live.session import LiveSession

    args = build_parser().parse_args(["--api", "jack", "--model", str(tiny_model_file), "--config",
                                      str(tmp_path / "config.toml"), "--gap", "200", "--reply-notes", "3",
                                      "--reply-seconds", "1"])
    session = LiveSession(args, ports_optional=True)
    session.start()
    app = ImprovApp(session, sessions_dir=tmp_path / "sessions", apis=["jack"])
    async with app.run_test() as pilot:
        # JACK clients of this process: closed before the session, with nothing in flight (a client's Python
        # callback waits for the GIL that closing another client holds, and JACK waits for that callback).
        with open_midi_out(unique_client_name("tui-keys")) as keys, MidiRecorder() as synth:
            keys_port = open_virtual(keys, "out")
            await pilot.press("p")
            await wait_until(pilot, lambda: isinstance(app.screen, PortPicker))
            await pick(pilot, app, "#inputs", keys_port)
            await wait_until(pilot, lambda: session.input.port_name == keys_port and session.input.connected,
                             what="input switched")
            await pick(pilot, app, "#outputs", synth.port)
            await wait_until(pilot, lambda: session.output.port_name == synth.port, what="output switched")
            await pilot.press("escape")
            assert f"in {keys_port} connected" in screen_text(app)
            for pitch in PHRASE[:4]:
                keys.send_message([0x90, pitch, 90])
                await asyncio.sleep(0.08)
                keys.send_message([0x80, pitch, 0])
                await asyncio.sleep(0.04)
            await wait_until(pilot, lambda: note_ons_of(synth.messages), what="the answer on the new output")
            await wait_until(pilot, lambda: {n.who for n in app.recording.notes} == {PLAYER, IMPROV})
            await pilot.press("space")  # nothing more to send while the clients close
            await wait_until(pilot, lambda: session.engine.output.sounding() == 0 and app.paused)
        await pilot.press("q")
    assert session.engine.failed is None
    assert [n.pitch for n in app.recording.notes if n.who == PLAYER] == PHRASE[:4]


def note_ons_of(messages: Sequence[Any]) -> list[Any]:
    return [m for m in messages if len(m.data) == 3 and m.data[0] & 0xF0 == 0x90 and m.data[2] > 0]


# -- snapshots -----------------------------------------------------------------------------------------

NOW = 1000.0


def scripted_app(tiny_model, tmp_path: Path) -> ImprovApp:
    """The app over an engine that is not running, its events written in advance: the same picture every time."""
    session = FakeSession(tiny_model, tmp_path / "config.toml", start=False)
    events = session.engine.events
    for i, pitch in enumerate(PHRASE):
        start = NOW - 6.6 + i * 0.25
        events.put(PlayerNoteOn(pitch, 90, start))
        events.put(NotePlayed(PLAYER, pitch, 90, start, 0.2))
    for i, pitch in enumerate([67, 69, 71, 72, 74, 72, 71, 69, 67, 64]):
        events.put(NotePlayed(IMPROV, pitch, 80, NOW - 4.0 + i * 0.3, 0.25 if i != 9 else 1.0))
    events.put(ReplyDone(10, 1.0, 12.4, 0.85, 2.417, 3.1, False, 1.0, (67, 69)))
    events.put(ReplyDone(8, 1.0, 14.9, 0.91, 2.203, 3.0, True, 1.0, (67,)))
    events.put(StateChanged(1.25, "call", False, 0.0, None))
    events.put(PlayerNoteOn(64, 90, NOW - 0.4))  # still held
    return ImprovApp(session, clock=lambda: NOW, sessions_dir=tmp_path / "sessions", apis=["alsa", "jack"])


def test_snapshot_main_screen(snap_compare, tiny_model, tmp_path) -> None:
    assert snap_compare(scripted_app(tiny_model, tmp_path), terminal_size=(80, 24))


def test_snapshot_help_screen(snap_compare, tiny_model, tmp_path) -> None:
    assert snap_compare(scripted_app(tiny_model, tmp_path), press=["question_mark"], terminal_size=(80, 24))


def test_snapshot_port_picker(snap_compare, tiny_model, tmp_path) -> None:
    assert snap_compare(scripted_app(tiny_model, tmp_path), press=["p"], terminal_size=(80, 24))


# -- the parts, as plain functions ------------------------------------------------------------------------


def test_recording_pairs_held_keys_with_their_ends_and_saves_from_zero(tmp_path) -> None:
    recording = Recording()
    recording.key_down(60, 90, 500.0)
    recording.played(IMPROV, 72, 70, 500.5, 1.0)
    assert [n.end for n in recording.notes] == [None, 501.5]
    recording.played(PLAYER, 60, 90, 500.0, 0.8)
    recording.key_down(62, 80, 502.0)
    recording.cut(IMPROV, 501.0)
    tracks = recording.tracks(now=503.0)
    assert [(n.pitch, n.start, n.duration) for n in tracks[PLAYER]] == [(60, 0.0, pytest.approx(0.8)),
                                                                        (62, 2.0, 1.0)]
    assert [(n.pitch, n.start, n.duration) for n in tracks[IMPROV]] == [(72, 0.5, pytest.approx(0.5))]
    path = recording.save(tmp_path, 503.0)
    assert path.parent == tmp_path and path.name.startswith("session-")
    assert recording.save(tmp_path, 503.0) != path  # never over another file
    assert {k: len(v) for k, v in read_midi_tracks(path).items()} == {PLAYER: 2, IMPROV: 1}


def test_recording_shows_only_notes_in_the_window() -> None:
    recording = Recording()
    recording.played(PLAYER, 60, 90, 10.0, 0.5)
    recording.played(IMPROV, 62, 90, 20.0, 0.5)
    recording.key_down(64, 90, 5.0)  # held since long before the window
    assert sorted(n.pitch for n in recording.visible(19.0, 21.0)) == [62, 64]
    assert sorted(n.pitch for n in recording.visible(9.0, 11.0)) == [60, 64]


def test_roll_cells_place_notes_by_time_and_pitch_and_mark_overlaps() -> None:
    recording = Recording()
    recording.played(PLAYER, 60, 90, 9.0, 0.26)  # columns 0-2 of 10 (0.1 s each, window 9.0-10.0)
    recording.played(IMPROV, 60, 90, 9.23, 0.12)  # columns 2-3: overlaps at column 2
    recording.key_down(61, 90, 9.75)  # held: to the right edge
    window = PitchWindow(60, 1, 2)
    cells = roll_cells(recording.visible(9.0, 10.0), 10.0, 10, window, 0.1)
    assert cells[1][:5] == [PLAYER, PLAYER, "both", IMPROV, ""]
    assert cells[0] == [""] * 7 + [PLAYER] * 3


def test_pitch_window_fits_the_notes_and_keeps_still_while_they_fit() -> None:
    window = fit_pitches(60, 67, 15)
    assert window.per_row == 1 and window.fits(60, 67)
    assert fit_pitches(62, 65, 15, window) is window
    wide = fit_pitches(24, 100, 15)
    assert wide.per_row == 6 and wide.fits(24, 100)
    assert fit_pitches(0, 127, 4).fits(0, 127)
    assert window.row_of(window.lowest) == 14 and window.row_of(window.lowest + 15) is None


def test_latency_stats_and_readouts() -> None:
    stats = LatencyStats()
    assert stats.last is stats.median is stats.p99 is None
    for ms in [*range(1, 100), float("nan"), 500.0]:
        stats.add(float(ms))
    assert len(stats) == 100 and stats.last == 500.0 and stats.median == 50.5 and stats.p99 == 99.0
    assert gauge(0.0, 4) == "····" and gauge(1.0, 4) == "████" and gauge(0.5, 4) == "██··"
    assert gauge(0.55, 4) == "██▎·"
    assert temperature_fraction(0.1, (0.1, 1.0, 3.0)) == 0.0 and temperature_fraction(5.0, (0.1, 1.0, 3.0)) == 1.0
    assert source_name(Source.cc(1)) == "CC1" and source_name(Source.note(60, 9)) == "note 60 ch10"
    assert source_name(None) == "no control"


def test_computer_piano_keys_and_octaves() -> None:
    piano = ComputerPiano()
    assert [piano.pitch(c) for c in "awsedftgyhujk"] == list(range(60, 73))
    assert piano.pitch("q") is None and piano.pitch("m") is None
    assert piano.shift("z") and piano.pitch("a") == 48 and piano.octave_name == "C3"
    for _ in range(20):
        piano.shift("x")
    assert piano.pitch("a") == 108 and piano.pitch("'") == 125
    assert note_name(61) == "C#4" and note_name(0) == "C-1"


@pytest.mark.parametrize("pitches, key", [
    ([60, 62, 64, 65, 67, 69, 71, 72], (0, "major")),
    ([57, 59, 60, 62, 64, 65, 68, 69], (9, "minor")),
    ([67, 69, 71, 72, 74, 76, 78, 79], (7, "major")),
])
def test_estimate_key_finds_major_and_minor_scales(pitches, key) -> None:
    assert estimate_key((p, 0.25) for p in pitches) == key
    assert estimate_key([]) is None


# -- engine commands the screen added, on a fake clock ------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run_until(engine: Engine, clock: Clock, t: float) -> None:
    while clock.now < t:
        clock.now = min(clock.now + 0.001, t)
        engine.process(clock.now)


def drain(engine: Engine) -> list[object]:
    out = []
    while not engine.events.empty():
        out.append(engine.events.get())
    return out


def fake_clock_engine(tiny_model, **settings: Any) -> tuple[Engine, list[tuple[int, ...]], Clock]:
    clock = Clock()
    sent: list[tuple[int, ...]] = []
    engine = Engine(tiny_model, lambda d: sent.append(tuple(d)), EngineSettings(random_seed=3, **settings),
                    clock=clock)
    return engine, sent, clock


def play_on_clock(engine: Engine, clock: Clock, pitches: Sequence[int]) -> None:
    for pitch in pitches:
        engine.push([0x90, pitch, 90], clock.now)
        run_until(engine, clock, clock.now + 0.2)
        engine.push([0x80, pitch, 0], clock.now)
        run_until(engine, clock, clock.now + 0.05)


def test_reroll_restores_the_seed_and_answers_again(tiny_model) -> None:
    engine, sent, clock = fake_clock_engine(tiny_model, gap_s=0.2, reply_notes=5, temperature=2.0)
    play_on_clock(engine, clock, PHRASE[:4])
    run_until(engine, clock, clock.now + 5)
    first = [e for e in drain(engine) if isinstance(e, ReplyDone)]
    seed_after_first = tuple(engine.improviser.seed)
    engine.command("reroll")
    run_until(engine, clock, clock.now + 5)
    events = drain(engine)
    again = [e for e in events if isinstance(e, ReplyDone)]
    assert len(first) == 1 and len(again) == 1 and again[0].rerolled and again[0].notes == 5
    assert again[0].pitches != first[0].pitches
    seed = tuple(engine.improviser.seed)
    assert seed[:-5] == seed_after_first[:-5]  # the same player's phrase before it, not the first answer
    assert any(isinstance(e, StateChanged) for e in events)


def test_reroll_before_any_answer_and_after_a_reset_says_so(tiny_model) -> None:
    engine, sent, clock = fake_clock_engine(tiny_model, gap_s=0.2, reply_notes=3)
    engine.command("reroll")
    engine.process(clock.now)
    assert any(getattr(e, "text", "").startswith("nothing to re-roll") for e in drain(engine))
    play_on_clock(engine, clock, PHRASE[:3])
    run_until(engine, clock, clock.now + 3)
    engine.command("reset")
    engine.command("reroll")
    engine.process(clock.now)
    assert any(getattr(e, "text", "").startswith("nothing to re-roll") for e in drain(engine))


def test_key_lock_keeps_answers_in_the_key_of_the_phrase(tiny_model) -> None:
    engine, sent, clock = fake_clock_engine(tiny_model, gap_s=0.5, reply_notes=24, temperature=3.0)
    play_on_clock(engine, clock, [62, 64, 66, 67, 69, 71, 73, 74])  # D major
    engine.command("key_lock")
    engine.process(clock.now)
    assert engine.constraints.key == (2, "major")
    run_until(engine, clock, clock.now + 40)
    answer = [d[1] for d in sent if d[0] & 0xF0 == 0x90 and d[2] > 0]
    assert len(answer) == 24
    assert {p % 12 for p in answer} <= {2, 4, 6, 7, 9, 11, 1}
    engine.command("key_lock")
    engine.process(clock.now)
    assert engine.constraints.key is None
    states = [e for e in drain(engine) if isinstance(e, StateChanged)]
    assert [s.key for s in states] == [(2, "major"), None]


def test_player_note_on_is_reported_when_the_key_goes_down(tiny_model) -> None:
    engine, sent, clock = fake_clock_engine(tiny_model, gap_s=5.0)
    engine.push([0x90, 61, 77], clock.now)
    engine.process(clock.now)
    assert drain(engine) == [PlayerNoteOn(61, 77, pytest.approx(clock.now))]
