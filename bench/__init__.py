"""Outpost's benchmarks: scripts that measure, never tests (layout: docs/dev/bench.md)."""
