"""`improv render`: play a saved session (or any MIDI file) with a SoundFont into a WAV file."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "render", help="render a session or MIDI file to a WAV with a General MIDI SoundFont",
        description=(
            "Render a MIDI file to a 16-bit stereo WAV with the built-in synthesizer (FluidSynth), "
            "release tails included. Tracks 'player'/'primer' play the player's program, "
            "'improv'/'continuation' improv's; other tracks the player's. Programs are General MIDI, "
            "numbered 0-127: 0 piano, 4 electric piano, 73 flute."),
    )
    p.add_argument("midi", type=Path, metavar="SESSION.mid", help="a session saved with 's', a generate output, any MIDI file")
    p.add_argument("-o", "--out", type=Path, default=None, metavar="OUT.wav",
                   help="the WAV to write (default: the MIDI file's name with .wav)")
    p.add_argument("--soundfont", type=Path, default=None, metavar="FILE",
                   help="a .sf2/.sf3 SoundFont (default: the first one installed, e.g. /usr/share/sounds/sf2/)")
    p.add_argument("--player-program", type=int, default=None, metavar="N", help="program of the player's notes (default 0, piano)")
    p.add_argument("--improv-program", type=int, default=None, metavar="N",
                   help="program of improv's notes (default 4, electric piano)")
    p.add_argument("--sample-rate", type=int, default=None, metavar="HZ", help="sample rate (default 44100)")
    p.set_defaults(handler=run_render)


def run_render(args: argparse.Namespace) -> int:
    from improv.sound import synth

    out = args.out if args.out is not None else args.midi.with_suffix(".wav")
    rendered = synth.render_file(
        args.midi,
        out,
        args.soundfont,
        player_program=synth.PLAYER_PROGRAM if args.player_program is None else args.player_program,
        improv_program=synth.IMPROV_PROGRAM if args.improv_program is None else args.improv_program,
        sample_rate=synth.DEFAULT_SAMPLE_RATE if args.sample_rate is None else args.sample_rate,
    )
    print(f"wrote {rendered.wav_path}: {rendered.notes} notes, {rendered.seconds:.1f} s, SoundFont {rendered.soundfont}")
    return 0
