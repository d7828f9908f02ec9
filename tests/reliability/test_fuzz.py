"""Schemathesis against the live server's own /openapi.json: for generated requests, valid and invalid,
no 5xx, and every answer matches what the schema declares (status, content type, headers, body).

One test per operation and mode, bounded (MAX_EXAMPLES each, derandomized); marked `fuzz` so CI can run it
as its own step with `pytest -m fuzz` (it is quick enough for the main suite too). The operations are
driven through Hypothesis directly: schemathesis' lazy pytest fixture loader does not run under pytest 9."""

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import create_app
from app.settings import Settings

pytestmark = pytest.mark.fuzz

MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
FUZZ_SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))
METHODS = ("get", "post", "put", "patch", "delete")
FRAMING = {"transfer-encoding", "content-length", "host", "connection"}  # headers that frame the request
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


def operation_cases() -> list:
    """(label, mode) for every operation of the app's schema (building the app loads no model): both modes
    where the operation takes input, only valid requests where there is nothing to make invalid."""
    paths = create_app(Settings()).openapi()["paths"]
    cases = []
    for path, item in paths.items():
        for method, op in ((m, op) for m, op in item.items() if m in METHODS):
            label = f"{method.upper()} {path}"
            modes = MODES if op.get("parameters") or op.get("requestBody") else MODES[:1]
            cases += [pytest.param(label, mode, id=f"{label} {mode.value}") for mode in modes]
    return cases


CASES = operation_cases()
LABELS = sorted({c.values[0] for c in CASES})


@pytest.fixture(scope="module")
def live_schema(server):
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json", timeout=30)


@pytest.fixture(scope="module")
def tally():
    sent: dict[str, int] = {}
    yield sent
    print(f"\nschemathesis: {len(sent)} operation-modes, {sum(sent.values())} requests")


def test_the_live_server_publishes_these_operations(live_schema):
    assert sorted(op.ok().label for op in live_schema.get_all_operations()) == LABELS


@pytest.mark.parametrize("label, mode", CASES)
def test_operation_conforms_to_its_schema(live_schema, server, tally, label, mode):
    method, path = label.split(" ", 1)
    operation = live_schema[path][method]
    tally[f"{label} {mode.value}"] = 0

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        # a request whose framing headers are garbage is not HTTP: uvicorn refuses it (400 "Invalid HTTP
        # request received.") before the app, which has nothing to declare about it
        assume(not FRAMING & {name.lower() for name in case.headers or {}})
        tally[f"{label} {mode.value}"] += 1
        case.call_and_validate(headers=server.write_headers, checks=CHECKS, timeout=30)

    run()
    assert server.alive()
