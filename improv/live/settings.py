"""The engine's settings: what a session, the config file and the command line set once at start."""

from __future__ import annotations

from dataclasses import dataclass, field

from improv.live.clock import REPLY_ON, pulse_seconds
from improv.live.planner import PlanSettings
from improv.live.protocol import MODES
from improv.model.style import check_follow
from improv.model.temperature import check_temperature

SYNC_MODES = ("off", "clock", "link")
LINK_QUANTUM_RANGE = (1, 16)  # beats in a Link bar
MIN_REGISTER_MARGIN = 6  # a tritone each way: every pitch class stays in reach, so a key lock still has notes
CHORD_MEMORY = 8  # the player's last onsets whose chord sizes `chord_margin` follows
KEY_LOCK_NOTES = 24  # the player's last notes that `key_lock` estimates the key from


@dataclass
class EngineSettings:
    mode: str = "call"
    gap_s: float = 0.5
    reply_notes: int = 16
    reply_seconds: float | None = None
    temperature: float = 1.0
    follow: float = 0.0  # how much answers follow the player's own style (0: the trained model only)
    out_channel: int = 0
    thru: bool = False
    seed_events: int = 64
    random_seed: int | None = None
    pitch_range: tuple[int, int] = (21, 108)
    key: tuple[int, str] | None = None
    max_polyphony: int = 6
    # An answer's chords have at most this many notes more than the player's largest chord of late
    # (their last CHORD_MEMORY onsets), up to max_polyphony; None: up to max_polyphony. Played a
    # single line, the model answered it with three- and four-note chords.
    chord_margin: int | None = 1
    # Answers stay within this many semitones of the notes the player has just played (their last
    # KEY_LOCK_NOTES), inside pitch_range; None or 0: anywhere in pitch_range. The model, trained on
    # two-handed piano music, otherwise leaps between registers (a C major arpeggio in 55-72 drew
    # 16-note answers spanning a median 31 semitones, a third of them above C6).
    register_margin: int | None = 12
    echo_window_s: float = 0.03
    max_hold_s: float = 10.0
    stale_key_s: float = 8.0  # a player's key down this long without its note-off is taken as released
    lookahead_s: float = 0.05
    # Sample an answer's opening this long before the gap ends (taken back if the player plays on
    # meanwhile): its first note then sounds the moment the gap ends, and its first chord together.
    presample_s: float = 0.03
    duet_lookahead_s: float = 0.15
    velocity_range: tuple[int, int] = (20, 120)
    sync: str = "off"  # "clock": follow incoming MIDI clock
    clock_out_bpm: float | None = None  # be the clock: send it on the output at this tempo
    quantize: int | None = 6  # grid of synced answers in clock pulses (6 = 1/16); None: off
    reply_on: str = "beat"  # synced answers start on the next "beat", "bar", or "now"
    # The answer planner's margins (improv.live.planner): an answer's shape comes from its call.
    # None: answers as the model plays them, within the margins above only.
    plan: PlanSettings | None = field(default_factory=PlanSettings)
    link_tempo_bpm: float = 120.0  # "link": the session's tempo when improv starts it (no peer there yet)
    link_quantum: int = 4  # "link": beats in the session's bar (the bar of reply_on "bar")

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {', '.join(SYNC_MODES)}, got {self.sync!r}")
        if self.reply_on not in REPLY_ON:
            raise ValueError(f"reply-on must be one of {', '.join(REPLY_ON)}, got {self.reply_on!r}")
        if self.sync != "off" and self.clock_out_bpm is not None:
            raise ValueError(f"sync {self.sync} and --clock-out exclude each other: follow a clock or be one")
        try:
            pulse_seconds(self.link_tempo_bpm)
        except ValueError as error:
            raise ValueError(f"link-tempo {error}") from None
        lo, hi = LINK_QUANTUM_RANGE
        if not (isinstance(self.link_quantum, int) and lo <= self.link_quantum <= hi):
            raise ValueError(f"link-quantum must be {lo}-{hi} beats, got {self.link_quantum!r}")
        check_temperature(self.temperature)
        check_follow(self.follow)
        if self.chord_margin is not None and self.chord_margin < 0:
            raise ValueError(f"chord-margin must be 0 or more notes, got {self.chord_margin!r}")
        margin = self.register_margin
        if margin is not None and margin != 0 and not MIN_REGISTER_MARGIN <= margin <= 127:
            raise ValueError(f"register-margin must be 0 (off) or {MIN_REGISTER_MARGIN}-127 semitones, "
                             f"got {self.register_margin!r}")
        if not self.presample_s >= 0.0:
            raise ValueError(f"presample must be 0 or more seconds, got {self.presample_s!r}")
        if self.clock_out_bpm is not None:
            try:
                pulse_seconds(self.clock_out_bpm)
            except ValueError as error:
                raise ValueError(f"clock-out {error}") from None
