"""schemathesis, from /openapi.json, against the real app (issue 9): a bounded number of
generated requests per operation, valid and invalid ones, authenticated with a real admin key,
on a migrated database and a real Redis. No answer may be a 500, and every answer must be one
the document states: its status, its content type and its body's schema.

Half the requests name the model and a job that exist (generated ones are all unknown, and
would only ever reach the 404s). Operations are walked here rather than through schemathesis's
pytest plugin, whose fixture loader does not run under pytest 9.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.api.conftest import MODEL

CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 25  # per operation and mode: about 15 operations, under 10 s a backend


def run_operation(operation: Any, mode: GenerationMode, env: Any) -> list[str]:
    """The failures of EXAMPLES generated requests to ``operation``, as readable reports."""
    headers = env.keys.auth("admin")
    found: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode), real=st.booleans())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,  # nothing written into the work tree
        derandomize=True,  # the same requests every run: a failure here reproduces
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure costs no minute
    )
    def run(case: Any, real: bool) -> None:
        if real:
            name_what_exists(case, env)
        response = case.call(headers=headers)
        # 503 is an answer the document states (a busy or unready server); any other 5xx is not.
        assert response.status_code < 500 or response.status_code == 503, case.as_curl_command()
        case.validate_response(response, checks=CHECKS, headers=headers)

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid: an operation without parameters or body
        assert mode == GenerationMode.NEGATIVE, operation.label
    except (Exception, BaseExceptionGroup) as exc:  # the report names the request and the fault
        found.append(f"{operation.label} ({mode.value}): {exc}")
    return found


def name_what_exists(case: Any, env: Any) -> None:
    if isinstance(case.path_parameters, dict) and "job_id" in case.path_parameters:
        case.path_parameters["job_id"] = env.job(2, owner="admin", seal=False).id
    if isinstance(case.body, dict) and "model" in case.body:
        case.body["model"] = MODEL
        if case.operation.path == "/v1/infer":
            case.body["timeout_s"] = 0.1  # no worker here: the wait would run to its end


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_get_documented_answers(env, mode):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", env.app)
    failures = []
    for result in schema.get_all_operations():
        failures += run_operation(result.ok(), mode, env)
    assert not failures, "\n\n".join(failures)
