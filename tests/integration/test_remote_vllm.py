"""RemoteLLMDeployment against a real vLLM OpenAI server on the CPU (loopback only).

One server for the module, started from the tiny throwaway family with one LoRA adapter
served as a model name. The server runs in its own session (process group) and is stopped,
and checked gone, at the end; a start-up that fails shows the server's log.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import psutil
import pytest

from orchestrator.backends.llm import GenerationRequest, PromptTooLongError, UnknownAdapterError
from orchestrator.backends.remote import RemoteLLMDeployment

if TYPE_CHECKING:
    from tests.integration.tiny_models import TinyFamily

pytest_plugins = ["tests.integration.tiny_models"]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

T = TypeVar("T")
STARTUP_TIMEOUT_S = 300  # 20-30 s alone; 60-120 s on a busy 2-core machine
STOP_TIMEOUT_S = 30
MESSAGES = [{"role": "user", "content": "river water spill flow"}]


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env() -> dict[str, str]:
    from tests.integration.tiny_models import use_project_caches  # the plugin, loaded by now

    use_project_caches()  # compiled CPU kernels are reused across runs
    return os.environ | {
        "HF_HUB_OFFLINE": "1",
        "VLLM_HOST_IP": "127.0.0.1",
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",  # the machine's cores are shared
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }


def start_server(family: TinyFamily, log: Path) -> Server:
    from tests.integration.tiny_models import LORA_RANK

    port = free_port()
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(family.base), "--served-model-name", "tiny-base",
        "--enable-lora", "--lora-modules", f"ad0={family.adapters['ad0']}",
        "--max-lora-rank", str(LORA_RANK),
        "--max-loras", "2",  # a free slot: see CPU-STACK.md on vllm-cpu's LoRA slot bug
        "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", "256", "--dtype", "float32", "--enforce-eager",
        "--uvicorn-log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=server_env(), start_new_session=True
        )
    return Server(process, f"http://127.0.0.1:{port}/v1", log)


def wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    health = server.base_url.removesuffix("/v1") + "/health"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"vLLM server exited ({server.process.returncode}):\n{server.log_tail()}")
        try:
            if httpx.get(health, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"vLLM server not healthy after {STARTUP_TIMEOUT_S} s:\n{server.log_tail()}")


def stop_server(server: Server) -> list[psutil.Process]:
    """SIGTERM the server's process group (it is our own session), SIGKILL what lingers;
    returns the processes still alive after that (none expected)."""
    try:
        family = [psutil.Process(server.process.pid)]
        family += family[0].children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(STOP_TIMEOUT_S)
    _, alive = psutil.wait_procs(family, timeout=STOP_TIMEOUT_S)
    for process in alive:  # an engine process that left the group: still ours
        process.kill()
    return alive


@pytest.fixture(scope="module")
def server(tiny_family: TinyFamily, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tiny_family, tmp_path_factory.mktemp("vllm-server") / "server.log")
    try:
        wait_healthy(server)
        yield server
    finally:
        alive = stop_server(server)
    assert not alive, f"vLLM processes outlived SIGTERM: {alive}"
    leftovers = [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if str(tiny_family.base) in " ".join(p.info["cmdline"] or [])
    ]
    assert not leftovers, f"processes still serving the tiny model: {leftovers}"


@pytest.fixture
def call(server: Server) -> Callable[[Callable[[RemoteLLMDeployment], Awaitable[T]]], T]:
    """Run ``fn(deployment)`` on a fresh event loop with a fresh deployment, then close it."""
    config = {
        "base_url": server.base_url,
        "served_name": "tiny-base",
        "adapters": ["ad0", "ghost"],  # 'ghost' is configured here but not served there
        "max_model_len": 256,
        "timeout_s": 60,
    }

    def run(fn: Callable[[RemoteLLMDeployment], Awaitable[T]]) -> T:
        async def main() -> T:
            deployment = RemoteLLMDeployment(config)
            try:
                return await fn(deployment)
            finally:
                await deployment.aclose()

        return asyncio.run(main())

    return run


def request(adapter: str | None = None, **kwargs: Any) -> GenerationRequest:
    return GenerationRequest(messages=MESSAGES, adapter=adapter, max_tokens=8, **kwargs)


def test_health_and_describe(call):
    described = call(_health_then_describe)
    assert described["served_name"] == "tiny-base" and described["backend"] == "remote"


async def _health_then_describe(deployment: RemoteLLMDeployment) -> dict[str, Any]:
    await deployment.check_health()
    return deployment.describe()


def test_generate_returns_text_one_logprob_per_token_and_usage(call):
    result = call(lambda d: d.generate(request()))
    assert result.text and result.model == "tiny-base"
    assert result.completion_tokens == len(result.token_logprobs) == 8  # max_tokens, random model
    assert all(math.isfinite(lp) and lp <= 0 for lp in result.token_logprobs)
    assert result.prompt_tokens > 0 and result.finish_reason in ("length", "stop")


def test_an_adapter_answers_differently_from_the_base(call):
    base = call(lambda d: d.generate(request()))
    adapted = call(lambda d: d.generate(request("ad0")))
    assert adapted.model == "ad0" and adapted.completion_tokens == len(adapted.token_logprobs)
    assert (adapted.text, adapted.token_logprobs) != (base.text, base.token_logprobs)


@pytest.mark.parametrize("adapter", [None, "ad0"])
def test_stream_equals_generate_at_temperature_zero(call, adapter):
    whole = call(lambda d: d.generate(request(adapter)))
    deltas = call(lambda d: _collect(d.stream(request(adapter))))
    assert "".join(d.text for d in deltas) == whole.text
    streamed = [lp for d in deltas for lp in d.token_logprobs]
    assert streamed == pytest.approx(whole.token_logprobs, abs=1e-4)
    last = deltas[-1]
    assert last.finish_reason == whole.finish_reason
    assert (last.prompt_tokens, last.completion_tokens) == (
        whole.prompt_tokens,
        whole.completion_tokens,
    )
    assert all(d.finish_reason is None for d in deltas[:-1])


async def _collect(stream: Any) -> list[Any]:
    return [delta async for delta in stream]


def test_an_adapter_the_server_does_not_serve_is_unknown(call):
    with pytest.raises(UnknownAdapterError, match="ghost") as caught:
        call(lambda d: d.generate(request("ghost")))
    assert caught.value.param == "model"


def test_a_prompt_longer_than_the_context_is_too_long(call):
    long = [{"role": "user", "content": "river water " * 200}]
    with pytest.raises(PromptTooLongError) as caught:
        call(lambda d: d.generate(GenerationRequest(messages=long, max_tokens=8)))
    assert caught.value.param == "messages"
