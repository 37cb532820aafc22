"""Shipped model files, installed as the `improv.models` package data."""
