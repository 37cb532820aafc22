"""Test support: a private JACK server and helpers that drive improv as a player would."""
