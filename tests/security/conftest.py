"""Security fixtures: the same in-process server harness as the end-to-end tests.

Each test file here attacks a real running server on loopback (real sockets, real SIP,
real HTTP). The harness comes from :mod:`tests.e2e.conftest` so both suites start the
server the same way.
"""

from tests.e2e.conftest import Harness, harness, make_settings, wait_until

__all__ = ["Harness", "harness", "make_settings", "wait_until"]
