"""Property-based tests of the whole HTTP surface from its own /openapi.json (schemathesis).

The real FastAPI app and SQLite ledger with in-process models (tests/fakes.py); a bounded,
derandomized number of cases per operation, with a valid key. Checks: never a 5xx, every
error in OpenAI's shape, and schemathesis's conformance checks (status codes, content types,
response schemas, auth actually enforced, 405 for unsupported methods)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from orchestrator.api.app import create_app
from orchestrator.builder import assemble_replica
from orchestrator.config import validate_config_dict
from orchestrator.ledger import Ledger
from tests.fakes import CONFIG, FakeModels

KEY = {"Authorization": "Bearer k"}
EXAMPLES_PER_OPERATION = 15
# Left out on purpose: a schema-valid body can still be refused (a model name that is not
# served: 404; max_tokens over the configured limit: 400), and unknown *query* parameters are
# ignored as HTTP APIs commonly do (unknown *body* fields are 400s: tests/integration/
# test_hostile_input.py). Everything else schemathesis checks stays on.
EXCLUDED_CHECKS = [positive_data_acceptance, negative_data_rejection]


def _app(directory: Path) -> tuple[Any, Ledger]:
    data = json.loads(json.dumps(CONFIG))
    data["ledger"] = {"url": f"sqlite:///{directory / 'ledger.db'}"}
    # Its own state dir: the adapter admin API writes the adapter registry there.
    data["server"] = {"state_dir": str(directory / "state")}
    data["tenants"][0]["admin"] = True  # the stats endpoints need an admin key
    config = validate_config_dict(data)
    models = FakeModels(0.95, {"label": "legal", "probability": 0.8, "abstained": False})
    ledger = Ledger(config.ledger.url)
    ledger.start()
    return create_app(assemble_replica(config, models.backends(), ledger)), ledger


@pytest.fixture(scope="module")
def asgi_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    app, ledger = _app(tmp_path_factory.mktemp("schemathesis"))
    yield app
    ledger.close()


@pytest.fixture(scope="module")
def api_schema(asgi_app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", asgi_app)


def check_openai_error_shape(response: Any) -> None:
    """No 5xx; any error body is exactly {"error": {message, type, param, code}}."""
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:500]}"
    if status < 400:
        return
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]


def _run_operation(operation: Any, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call_and_validate(headers=KEY, excluded_checks=EXCLUDED_CHECKS)
        check_openai_error_shape(response)

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_never_5xx_and_errors_are_openai_shaped(api_schema: Any, mode: GenerationMode) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    labels = {operation.label for operation in operations}
    assert {"POST /v1/chat/completions", "POST /v1/feedback", "GET /v1/models"} <= labels
    nothing_to_break: set[str] = set()
    for operation in operations:
        try:
            _run_operation(operation, mode)
        except Unsatisfiable:  # negative mode on an operation without inputs (GET /healthz)
            nothing_to_break.add(operation.label)
    assert mode == GenerationMode.NEGATIVE or not nothing_to_break
    assert not {"POST /v1/chat/completions", "POST /v1/feedback"} & nothing_to_break
