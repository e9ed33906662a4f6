"""Property-based: schemathesis generates requests from the service's own OpenAPI document
and sends them to the real service (a process, real sockets, as the admin), checking that
no answer is a server error and that every answer is one the document describes (status,
content type, body schema). Bounded: a few examples per operation, no shrinking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import Service

#: Where a generated destination would send: a loopback port nothing listens on (refused at
#: once), never a host name to resolve or an address outside this machine.
NOWHERE = "http://127.0.0.1:9/hook"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def fuzzed_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = Service(Path(tmp_path_factory.mktemp("fuzz")), "").start()
    yield service
    service.stop()


def _tamed(value: Any) -> Any:
    """Generated URLs point nowhere outside; nothing else is changed."""
    if isinstance(value, dict):
        return {k: (NOWHERE if k == "url" and isinstance(v, str) else _tamed(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_tamed(v) for v in value]
    return value


def test_no_server_error_and_every_answer_as_documented(fuzzed_service: Service) -> None:
    schema = schemathesis.openapi.from_url(fuzzed_service.base_url + "/openapi.json")
    headers = {"Authorization": f"Bearer {fuzzed_service.admin_token}"}
    failures: list[str] = []
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) == ("DELETE", "/api/v1/session"):
            continue  # nothing to fuzz: it only ends the caller's own session

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            if isinstance(case.body, (dict, list)):
                case.body = _tamed(case.body)
            case.call_and_validate(
                base_url=fuzzed_service.base_url, headers=headers, checks=CHECKS, timeout=20
            )

        tried += 1
        try:
            run()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # every operation is tried; all failures reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:1500]}")
    assert tried > 30, "the document lists the API's operations"
    assert not failures, "\n\n".join(failures)
