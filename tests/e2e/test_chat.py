"""The README path through the official openai client, on the real stack (Ray Serve, the
router artifact, two vLLM engines on the CPU, the SQLite ledger)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningService

pytestmark = pytest.mark.slow

LEGAL_QUESTION = (
    "My landlord kept my security deposit after the lease ended. "
    "Can I sue for breach of contract in small claims court?"
)
CODE_QUESTION = "How do I reverse a list in Python without modifying the original list?"


def _ask(service: RunningService, **kwargs: Any) -> Any:
    client = service.client()
    return client.chat.completions.with_raw_response.create(**kwargs)


def _ledger_row(service: RunningService, query_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{service.base_url}/v1/queries/{query_id}",
        headers={"Authorization": f"Bearer {service.api_key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_auto_completion_answers_and_explains(service: RunningService) -> None:
    raw = _ask(
        service,
        model="auto",
        messages=[{"role": "user", "content": "Hello there!"}],
        max_tokens=16,
        temperature=0,
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage.completion_tokens > 0
    info = completion.model_extra["spillway"]
    for key in (
        "query_id",
        "route",
        "route_probability",
        "adapter",
        "confidence",
        "escalated",
        "reason",
        "cost_usd",
    ):
        assert key in info
    assert raw.headers["x-spillway-query-id"] == info["query_id"]
    assert Decimal(info["cost_usd"]) > 0


def test_legal_question_lands_on_legal_adapter(service: RunningService) -> None:
    completion = _ask(
        service,
        model="auto",
        messages=[{"role": "user", "content": LEGAL_QUESTION}],
        max_tokens=16,
        temperature=0,
    ).parse()
    info = completion.model_extra["spillway"]
    assert info["route"] == "legal"
    assert info["adapter"] == "legal"
    assert info["escalated"] is False  # legal's threshold is 0.0 in the test config
    assert completion.model == "legal"


def test_threshold_one_escalates_and_ledger_matches(service: RunningService) -> None:
    # Named adapter: the router is skipped, so the route is exactly `code` (threshold 1.0).
    raw = _ask(
        service,
        model="code",
        messages=[{"role": "user", "content": CODE_QUESTION}],
        max_tokens=16,
        temperature=0,
    )
    completion = raw.parse()
    info = completion.model_extra["spillway"]
    assert info["route"] == "code" and info["adapter"] == "code"
    assert info["escalated"] is True
    assert info["reason"] == "low_confidence"
    assert completion.model == "spillway-large"
    assert raw.headers["x-spillway-escalated"] == "true"

    row = _ledger_row(service, info["query_id"])
    assert row["route"] == "code" and row["adapter"] == "code"
    assert row["escalated"] is True and row["status"] == "ok"
    assert row["large_completion_tokens"] == completion.usage.completion_tokens
    assert row["large_prompt_tokens"] == completion.usage.prompt_tokens
    assert row["small_completion_tokens"] > 0  # the wasted small attempt is recorded
    assert Decimal(row["cost_usd"]) == Decimal(info["cost_usd"])
    assert Decimal(row["cost_small_usd"]) > 0 and Decimal(row["cost_large_usd"]) > 0
    assert Decimal(row["cost_usd"]) == Decimal(row["cost_small_usd"]) + Decimal(
        row["cost_large_usd"]
    )


def test_stream_equals_non_stream_at_temperature_zero(service: RunningService) -> None:
    client = service.client()
    for question in (LEGAL_QUESTION, CODE_QUESTION):
        messages = [{"role": "user", "content": question}]
        whole = client.chat.completions.create(
            model="auto", messages=messages, max_tokens=24, temperature=0
        )
        chunks = list(
            client.chat.completions.create(
                model="auto", messages=messages, max_tokens=24, temperature=0, stream=True
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == whole.choices[0].message.content
        final = chunks[-1].model_extra["spillway"]
        assert final["escalated"] == whole.model_extra["spillway"]["escalated"]
        assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def _stream_ledger_row(service: RunningService, query_id: str) -> dict[str, Any]:
    """A stream's row is recorded just after its last event: wait for it briefly."""
    for _ in range(50):
        response = httpx.get(
            f"{service.base_url}/v1/queries/{query_id}",
            headers={"Authorization": f"Bearer {service.api_key}"},
            timeout=10,
        )
        if response.status_code == 200:
            return response.json()  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"no ledger row for {query_id}: {response.text}")


def test_stream_escalated_after_k_tokens_stops_and_bills_the_small_model(
    service: RunningService,
) -> None:
    """`code` decides after 4 tokens and always escalates: the small model is cancelled."""
    chunks = list(
        service.client().chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": CODE_QUESTION}],
            max_tokens=48,
            temperature=0,
            stream=True,
        )
    )
    info = chunks[-1].model_extra["spillway"]
    assert (info["escalated"], info["reason"]) == (True, "low_confidence")
    row = _stream_ledger_row(service, info["query_id"])
    assert 4 <= row["small_completion_tokens"] < 48
    assert chunks[-1].usage is not None
    assert row["large_completion_tokens"] == chunks[-1].usage.completion_tokens
    assert Decimal(row["cost_usd"]) == Decimal(row["cost_small_usd"]) + Decimal(
        row["cost_large_usd"]
    )


def test_naming_an_adapter_or_the_large_model_skips_the_router(service: RunningService) -> None:
    client = service.client()
    messages = [{"role": "user", "content": "What is a fever?"}]
    medical = client.chat.completions.create(model="medical", messages=messages, max_tokens=8)
    assert medical.model_extra["spillway"]["adapter"] == "medical"
    assert medical.model_extra["spillway"]["route_probability"] is None
    large = client.chat.completions.create(model="spillway-large", messages=messages, max_tokens=8)
    assert large.model == "spillway-large"
    assert large.model_extra["spillway"]["reason"] == "requested_large"


def test_readyz_checks_router_and_engines(service: RunningService) -> None:
    response = httpx.get(f"{service.base_url}/readyz", timeout=30)
    assert response.status_code == 200
    assert len(response.json()["router_version"]) == 12


def test_models_lists_base_adapters_and_large(service: RunningService) -> None:
    ids = {m.id for m in service.client().models.list()}
    assert {"auto", "spillway-small", "legal", "medical", "code", "spillway-large"} <= ids


def _post(
    service: RunningService, body: bytes | dict[str, Any], key: str | None = None
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        f"{service.base_url}/v1/chat/completions",
        content=content,
        timeout=30,
        headers={
            "Authorization": f"Bearer {key or service.api_key}",
            "Content-Type": "application/json",
        },
    )


MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{oops", 400, None),
        ({"model": "auto", "messages": []}, 400, "messages"),
        ({"model": "no-such-model", "messages": MSG}, 404, "model"),
        ({"model": "auto", "messages": MSG, "temperature": 5}, 400, "temperature"),
        ({"model": "auto", "messages": MSG, "max_tokens": 100000}, 400, "max_tokens"),
        (
            {"model": "auto", "messages": [{"role": "user", "content": "word " * 3000}]},
            400,
            "messages",
        ),
        (b"\xff\xfe", 400, None),
    ],
)
def test_bad_input_gets_openai_errors(
    service: RunningService, body: Any, status: int, param: str | None
) -> None:
    response = _post(service, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert error["message"]


def test_wrong_key_is_401(service: RunningService) -> None:
    response = _post(service, {"model": "auto", "messages": MSG}, key="sk-wrong")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_failed_queries_are_in_the_ledger(service: RunningService) -> None:
    response = _post(service, {"model": "no-such-model", "messages": MSG})
    assert response.status_code == 404
    row = _ledger_row(service, response.headers["x-spillway-query-id"])
    assert (row["status"], row["http_status"], row["model_requested"]) == (
        "error",
        404,
        "no-such-model",
    )
    assert row["error_type"] == "model_not_found"
    assert row["cost_usd"] == "0.0000000000"
