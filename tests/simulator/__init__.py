"""Tests of the uaCSTA phone simulator."""
