"""The OpenAPI document of /api/v1 against the live server: schemathesis finds no 5xx.

Every operation gets a bounded number of generated requests (with an admin API token), over
real HTTP. Checks: no server error, documented status codes, responses matching their schemas.
schemathesis is synchronous, so it runs in a worker thread while the server keeps the loop.
"""

from __future__ import annotations

import asyncio

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.web.conftest import Api

MAX_EXAMPLES = 15


def _fuzz(base: str, token: str) -> tuple[int, list[str]]:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    auth = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=base, headers=auth, timeout=15)
            case.validate_response(
                response,
                checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
            )

        try:
            check()
        except Exception as exc:  # collect every operation's failure, report them together
            failures.append(f"{operation.label}: {exc}")
    return operations, failures


async def test_openapi_document_and_docs_page(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.base) as anonymous:
        doc = (await anonymous.get("/openapi.json")).json()
        docs = await anonymous.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = doc["paths"]
    assert "/api/v1/devices/{device}/calls" in paths
    assert "/api/v1/devices/{device}/calls/{call_id}/single-step-transfer" in paths
    assert paths["/api/v1/devices/{device}/calls"]["post"]["responses"]["501"]


async def test_schemathesis_finds_no_server_errors(api: Api) -> None:
    operations, failures = await asyncio.to_thread(_fuzz, api.base, api.token)
    assert operations >= 25
    assert not failures, "\n\n".join(failures)
