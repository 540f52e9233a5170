"""The LLM deployment over an adapter registry (a fake engine that records LoRA loads): the
config's adapters serve as version 1, a change in the registry file is picked up on the next
request, `preload` loads the serving versions, removed versions are unloaded, and a version
whose files are broken is left out instead of failing every request."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.llm import GenerationRequest, LLMDeployment, UnknownAdapterError
from orchestrator.config.adapter_registry import RegistryFile, add_adapter
from tests.integration.test_llm_deployment import FakeEngine


class LoRAEngine(FakeEngine):
    """Records add_lora / remove_lora like AsyncLLM's (awaitable, bool results)."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.added: list[str] = []
        self.removed: list[int] = []

    async def add_lora(self, request: Any) -> bool:
        self.added.append(request.lora_name)
        return True

    async def remove_lora(self, lora_id: int) -> bool:
        self.removed.append(lora_id)
        return True


def _adapter(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir()
    (path / "adapter_config.json").write_text(json.dumps({"r": 8}), encoding="utf-8")
    (path / "adapter_model.safetensors").write_bytes(b"w")
    return path


@pytest.fixture
def setup(tmp_path: Path) -> tuple[LLMDeployment, RegistryFile, Path]:
    law = _adapter(tmp_path, "law")
    config = {"model": "m", "served_name": "small", "adapters": {"law": str(law)}}
    state = tmp_path / "state"
    deployment = LLMDeployment(config | {"max_model_len": 64}, LoRAEngine, str(state))
    return deployment, RegistryFile(state, {"law": str(law)}), tmp_path


def _lora_name(deployment: LLMDeployment, adapter: str) -> str:
    messages = [{"role": "user", "content": "hi"}]
    request = GenerationRequest(messages=messages, adapter=adapter, max_tokens=8)
    lora, _ = deployment._checked(request)
    return str(lora.lora_name)


def test_versions_follow_the_registry(setup: tuple[LLMDeployment, RegistryFile, Path]) -> None:
    deployment, registry, tmp = setup
    assert deployment.describe()["serving"] == {"law": "law@1"}
    assert _lora_name(deployment, "law") == "law@1"
    add_adapter(registry, "law", _adapter(tmp, "v2"), promote=True)
    described = asyncio.run(deployment.sync_adapters(preload=True))
    assert described["serving"] == {"law": "law@2"}
    assert deployment._engine.added == ["law@2"]
    assert _lora_name(deployment, "law") == "law@2" and _lora_name(deployment, "law@1") == "law@1"
    with registry.change() as current:
        current.rollback("law")
        current.remove("law@2")
    asyncio.run(deployment.sync_adapters())
    assert _lora_name(deployment, "law") == "law@1"
    assert deployment._engine.removed == [deployment._lora_ids["law@2"]]
    with pytest.raises(UnknownAdapterError):
        _lora_name(deployment, "law@2")


def test_a_broken_version_is_left_out(setup: tuple[LLMDeployment, RegistryFile, Path]) -> None:
    deployment, registry, tmp = setup
    broken = _adapter(tmp, "v2")
    add_adapter(registry, "law", broken, promote=True)
    stored = Path(registry.load().paths()["law@2"])
    (stored / "adapter_config.json").write_text(json.dumps({"r": 64}), encoding="utf-8")
    asyncio.run(deployment.sync_adapters())
    assert deployment.describe()["serving"] == {}  # law@2 is refused (rank 64 > 16)
    assert _lora_name(deployment, "law@1") == "law@1"  # the other versions still serve
