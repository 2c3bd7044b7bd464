"""Helpers for black-box tests of the comet server (raw HTTP, server processes)."""
