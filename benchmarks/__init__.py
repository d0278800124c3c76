"""Benchmarks: each module measures its room's targets as ratios in one run."""
