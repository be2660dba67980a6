"""SIPp as a phone against ``uacsta serve`` started from the README's defaults block.

SIPp 3.6/3.7 answers only the first ``WWW-Authenticate`` and only with MD5, like most phone
firmwares: with the configuration an integrator copies from the README (only listen
addresses and the data path changed) it registers with digest over UDP and TCP.
"""

from __future__ import annotations

import pytest

from tests.e2e.test_blackbox import Served, served  # noqa: F401  (the uacsta serve subprocess)
from tests.integration.conftest import SippRunner

MAC = "001565AABB0D"


@pytest.mark.sipp
@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_sipp_registers_with_readme_defaults(
    served: Served,  # noqa: F811
    run_sipp: SippRunner,
    transport: str,
) -> None:
    result = await run_sipp(
        "register_auth.xml",
        "-s",
        MAC,
        "-au",
        MAC,
        "-ap",
        "change-me",  # phones.password as the README's block states it
        remote=f"127.0.0.1:{served.sip_udp}",
        transport=transport,
        timeout=10,
    )
    assert result.returncode == 0, result.explain()
    log = served.log.read_text(errors="replace")
    assert f"new phone {MAC}" in log, log[-3000:]
