"""Helpers shared by the test suites (tiny controllable detectors, the scoring service as a subprocess)."""
