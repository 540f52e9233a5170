"""The README's quick start on the real default: `serve_config/local.yaml` as shipped (real
Qwen2.5-Coder models, the project's LoRA adapters, the MiniLM router), through the `openai`
client. These are the tests whose outcome depends on the models' quality."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import LOCAL_CONFIG, RunningService, start_service, stop_service

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_service(
    real_models_built: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    running, proc = start_service(tmp_path_factory.mktemp("real"), {}, LOCAL_CONFIG)
    yield running
    code = stop_service(proc)
    assert code == 0, f"exit {code} on SIGTERM:\n{running.log_path.read_text()[-3000:]}"


def _ask(service: RunningService, question: str, **options: Any) -> Any:
    return service.client().chat.completions.create(
        model="auto", messages=[{"role": "user", "content": question}], **options
    )


def test_first_request_after_ready_is_warm(real_service: RunningService) -> None:
    """The first request after ready (this module's first) is as quick as the same request
    again: the engines and adapters were warmed before ready (cold, the first took 50 times
    longer than the second here). Ratios in one run, not a wall-clock limit."""
    log = real_service.log_path.read_text(encoding="utf-8", errors="replace")
    small = [line for line in log.splitlines() if "warmed spillway-small" in line]
    assert small and all(f"'{name}'" in small[0] for name in ("legal", "medical", "code"))
    assert "warmed spillway-large" in log
    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        reply = real_service.client().chat.completions.create(
            model="spillway-large",
            messages=[{"role": "user", "content": "Say yes."}],
            max_tokens=4,
            temperature=0,
        )
        seconds.append(time.perf_counter() - started)
        assert reply.choices[0].message.content
    first, second = seconds
    assert first < 4 * second + 1.0, seconds


def test_readme_legal_question_lands_on_legal_with_a_real_answer(
    real_service: RunningService,
) -> None:
    reply = _ask(real_service, "Can my landlord keep my security deposit?")
    info = reply.model_extra["spillway"]
    assert info["route"] == "legal"
    assert info["adapter"] == "legal"
    assert info["route_probability"] > 0.5
    text = reply.choices[0].message.content.lower()
    assert "deposit" in text and ("landlord" in text or "tenant" in text), text
    assert 0.0 < info["confidence"] < 1.0
    assert reply.usage.completion_tokens > 5


@pytest.mark.parametrize(
    ("question", "route", "expected"),
    [
        ("What are the symptoms of pneumonia?", "medical", ("cough",)),
        ("How do I reverse a list in Python?", "code", ("reverse", "[::-1]")),
        ("What is the capital of Australia?", "general", ("canberra",)),
    ],
)
def test_each_domain_routes_and_answers(
    real_service: RunningService, question: str, route: str, expected: tuple[str, ...]
) -> None:
    reply = _ask(real_service, question, temperature=0)
    info = reply.model_extra["spillway"]
    assert info["route"] == route
    assert info["adapter"] == (None if route == "general" else route)
    text = reply.choices[0].message.content.lower()
    assert any(word in text for word in expected), text


def test_stream_answers_and_ledger_rows_record_the_route(real_service: RunningService) -> None:
    chunks = list(
        real_service.client().chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "What is a fever?"}],
            stream=True,
            max_tokens=48,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "temperature" in text.lower() or "fever" in text.lower(), text
    wanted, routes = {"legal", "medical", "code", "general"}, set()
    deadline = time.monotonic() + 10  # the writer commits rows in batches
    while not wanted <= routes and time.monotonic() < deadline:
        with sqlite3.connect(real_service.ledger_path) as db:
            routes = {row[0] for row in db.execute("SELECT route FROM ledger")}
        time.sleep(0.2)
    assert wanted <= routes
