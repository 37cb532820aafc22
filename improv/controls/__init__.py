"""The control surface: knobs, buttons and keys that steer improv instead of sounding as notes.

`actions` names what a control does and where it sits (CC or note, channel), with the knob curves;
`control_map` reads raw MIDI with those mappings in the input path. The config file keeps them.
"""
