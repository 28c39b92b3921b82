"""The public API fuzzed from its OpenAPI document (services/console/openapi.json) against the
running console and ingress with a real API key: schema-valid and schema-breaking requests, a
bounded number per endpoint. No answer is a 5xx, and every answer fits the document (declared
status, content type, headers and body schema)."""

from __future__ import annotations

import os

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks as openapi_checks

from services.console.api import OPENAPI

pytestmark = pytest.mark.e2e

SCHEMA = schemathesis.openapi.from_path(str(OPENAPI))
OPERATIONS = {op.ok().label: op.ok() for op in SCHEMA.get_all_operations()}
# Small by default (CI time); HERALD_FUZZ_EXAMPLES=200 for a deeper run by hand.
EXAMPLES = int(os.environ.get("HERALD_FUZZ_EXAMPLES", "12"))
CHECKS = [schemathesis.checks.not_a_server_error, openapi_checks.status_code_conformance,
          openapi_checks.content_type_conformance, openapi_checks.response_headers_conformance,
          openapi_checks.response_schema_conformance]
# The send API lives on ingress, the rest on the console (the document names one server).
INGRESS_PATHS = ("/v1/messages",)


def _base_url(api, path: str) -> str:
    proc = api["ingress"] if path.startswith(INGRESS_PATHS) else api["console"]
    return proc.url




def _takes_input(op) -> bool:
    return any(len(list(part)) for part in (op.path_parameters, op.query, op.headers, op.body))


# Every operation with valid requests; those that take any input with invalid ones too (an
# operation without input has no invalid request).
CASES = [pytest.param(label, GenerationMode.POSITIVE, id=f"{label} valid") for label in sorted(OPERATIONS)]
CASES += [pytest.param(label, GenerationMode.NEGATIVE, id=f"{label} invalid")
          for label in sorted(OPERATIONS) if _takes_input(OPERATIONS[label])]


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_no_request_to_the_public_api_gets_a_server_error_or_an_undocumented_answer(api, label, mode):
    op = OPERATIONS[label]
    base = _base_url(api, op.path)
    session = requests.Session()
    auth = {"Authorization": f"Bearer {api['key']}"}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def fuzz(case):
        case.call_and_validate(base_url=base, session=session, headers=auth, checks=CHECKS,
                               timeout=20)

    fuzz()
    assert api["console"].alive() and api["ingress"].alive()
