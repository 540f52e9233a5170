"""RemoteLLMConfig validation, describe(), picklable errors, and no I/O at construction."""

from __future__ import annotations

import pickle

import pytest
from pydantic import ValidationError

from orchestrator.backends.remote import (
    RemoteLLMConfig,
    RemoteLLMDeployment,
    RemoteLLMError,
    RemoteTimeoutError,
)

BASE = {"base_url": "http://vllm-small:8000/v1/", "served_name": "llama-8b"}


def test_every_field_is_described():
    undocumented = [n for n, f in RemoteLLMConfig.model_fields.items() if not f.description]
    assert undocumented == []


def test_defaults_and_normalised_url():
    config = RemoteLLMConfig.model_validate(BASE)
    assert config.base_url == "http://vllm-small:8000/v1"
    assert config.adapters == [] and config.api_key_env is None and config.max_model_len is None
    assert config.max_retries >= 0 and config.timeout_s > 0 and config.connect_timeout_s > 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"adapter": ["legal"]}, "Extra inputs"),
        ({"base_url": "vllm-small:8000/v1"}, "http://"),
        ({"adapters": ["legal", "legal"]}, "unique"),
        ({"adapters": [" "]}, "non-empty"),
        ({"adapters": ["llama-8b"]}, "equals served_name"),
        ({"served_name": ""}, "served_name"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_model_len": 8}, "max_model_len"),
    ],
)
def test_bad_configs_are_rejected_with_the_field_named(change, message):
    with pytest.raises(ValidationError, match=message):
        RemoteLLMConfig.model_validate(BASE | change)


def test_construction_does_no_io_and_describe_hides_credentials():
    # Nothing listens on this address; building the deployment must not try to connect.
    config = BASE | {"base_url": "https://user:pw@models.example:9/v1", "adapters": ["legal"]}
    deployment = RemoteLLMDeployment(config | {"max_model_len": 8192})
    described = deployment.describe()
    deployment.shutdown()
    assert described == {
        "served_name": "llama-8b",
        "adapters": ["legal"],
        "max_model_len": 8192,
        "backend": "remote",
        "base_url": "https://models.example:9/v1",
    }


def test_errors_survive_pickling_as_ray_handles_do():
    for error in (RemoteLLMError("server said 503", 503), RemoteTimeoutError("no answer")):
        restored = pickle.loads(pickle.dumps(error))
        assert type(restored) is type(error)
        assert (str(restored), restored.status) == (str(error), error.status)
    assert isinstance(RemoteTimeoutError("x"), TimeoutError)
