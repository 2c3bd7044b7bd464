"""Benchmarks of the comet server and the chat site (run from the repo root)."""
