"""Regression tests for defects found by fuzzing and the bad-input tests (one file each)."""
