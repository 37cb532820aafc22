"""Every key of the terminal UI in one table: the bindings, the key bar and the help screen read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyCommand:
    keys: str  # Textual key names, comma-separated
    action: str  # an action of ImprovApp, with its arguments
    shown: str  # how the help screen writes the key
    help: str  # what the help screen says it does
    letter: bool = False  # a letter key: off while the computer-keyboard piano is on


KEY_COMMANDS: tuple[KeyCommand, ...] = (
    KeyCommand("space", "pause", "space", "listen / pause: improv keeps hearing you but stops answering"),
    KeyCommand("up,right_square_bracket", "temperature(0.05)", "↑  ]", "temperature +0.05: bolder answers"),
    KeyCommand("down,left_square_bracket", "temperature(-0.05)", "↓  [", "temperature -0.05: safer answers"),
    KeyCommand("full_stop", "follow(0.1)", ".", "follow +0.1: answers lean on what you played this session"),
    KeyCommand("comma", "follow(-0.1)", ",", "follow -0.1: answers lean on the trained model"),
    KeyCommand("m", "mode", "m", "mode: call (answer when you pause) / duet (play along)", letter=True),
    KeyCommand("l", "learn", "l", "MIDI learn: pick an action, move a control; saved to the config", letter=True),
    KeyCommand("p", "ports", "p", "ports: pick the MIDI input and output; switches live", letter=True),
    KeyCommand("r", "reroll", "r", "re-roll: answer the last phrase again, resampled", letter=True),
    KeyCommand("s", "save", "s", "save the session as MIDI (tracks player, improv)", letter=True),
    KeyCommand("c", "reset", "c", "clear the seed: improv forgets what it heard", letter=True),
    KeyCommand("k", "key_lock", "k", "key lock: stay in the key of your last notes; again to unlock", letter=True),
    KeyCommand("a", "synth", "a", "built-in synth on / off: hear improv without a synth (needs a SoundFont)",
               letter=True),
    KeyCommand("minus", "tempo(-1)", "-", "tempo -1 BPM: the whole Link session's (--sync link)"),
    KeyCommand("equals_sign,plus", "tempo(1)", "=  +", "tempo +1 BPM: the whole Link session's (--sync link)"),
    KeyCommand("escape,exclamation_mark", "panic", "esc  !", "panic: all notes off now"),
    KeyCommand("tab", "piano", "tab", "computer-keyboard piano on / off (see below)"),
    KeyCommand("question_mark", "help", "?", "this help"),
    KeyCommand("q", "quit", "q  ctrl+c", "quit (every note is released first)", letter=True),
)

LETTER_ACTIONS = frozenset(command.action for command in KEY_COMMANDS if command.letter)

# The key bar: (key, label) pairs, shortest words that still say it.
KEY_BAR: tuple[tuple[str, str], ...] = (
    ("space", "pause"),
    ("↑↓", "temp"),  # the line above says "temperature": the bar fits two lines at 80 columns
    (", .", "follow"),
    ("m", "call/duet"),
    ("l", "learn"),
    ("p", "ports"),
    ("r", "re-roll"),
    ("s", "save"),
    ("c", "clear"),
    ("k", "key lock"),
    ("a", "synth"),
    ("esc", "panic"),
    ("tab", "piano"),
    ("?", "help"),
    ("q", "quit"),
)

PIANO_BAR: tuple[tuple[str, str], ...] = (
    ("a s d f g h j k l ; '", "white keys"),
    ("w e t y u o p", "black keys"),
    ("z x", "octave"),
    ("tab", "letters back"),
    ("space", "pause"),
    ("↑↓", "temperature"),
    ("esc", "panic"),
    ("?", "help"),
    ("ctrl+c", "quit"),
)
