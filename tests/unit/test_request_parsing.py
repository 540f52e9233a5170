"""Bad request bodies become OpenAI-style 400s that name the offending field."""

from __future__ import annotations

import json

import pytest

from orchestrator.api.body import parse_chat_request
from orchestrator.errors import InvalidRequest


def _body(**fields: object) -> bytes:
    base: dict[str, object] = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    base.update(fields)
    return json.dumps(base).encode()


def test_valid_request_parses_with_defaults() -> None:
    request = parse_chat_request(_body())
    assert request.model == "auto"
    assert request.messages[0].text() == "hi"
    assert request.temperature is None and request.top_p is None  # the engine's defaults
    assert request.requested_max_tokens() is None


def test_text_parts_are_joined() -> None:
    content = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    request = parse_chat_request(_body(messages=[{"role": "user", "content": content}]))
    assert request.messages[0].text() == "ab"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "empty_body"),
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b'{"model": "auto", "messages": "\xff"}', "invalid_utf8"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
    ],
)
def test_undecodable_bodies(raw: bytes, code: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_chat_request(raw)
    assert info.value.code == code
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": []}, "messages"),
        ({"model": ""}, "model"),
        ({"temperature": 3}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 2}, "n"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"tools": [{"type": "function"}]}, "tools"),
    ],
)
def test_invalid_fields_name_the_param(fields: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_chat_request(_body(**fields))
    assert info.value.param == param
    body = info.value.body()["error"]
    assert body["type"] == "invalid_request_error"
    assert body["param"] == param
    assert param in body["message"]


def test_missing_model_is_named() -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_chat_request(json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode())
    assert info.value.param == "model"
    assert "required" in info.value.message
