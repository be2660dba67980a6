"""Attacks on a running server: every finding of the hostile test, as a test."""
