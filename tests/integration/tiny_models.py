"""Throwaway tiny models for engine tests: a random Llama, a small tokenizer, PEFT adapters.

Everything is built from seeds in a few seconds, so tests never depend on downloaded or
separately built models. The numbers are chosen for vLLM's CPU backend: head_dim 32 is the
smallest head size its attention supports (``CPUAttentionBackend.get_supported_head_sizes``),
and LoRA rank 8 is one of the ranks vLLM accepts.

``hf_greedy`` is the independent reference: greedy decoding with transformers (+ PEFT), the
way the model and adapters were meant to be run, with the sampled tokens' log-probabilities.

It is also a pytest plugin (``pytest_plugins = ["tests.integration.tiny_models"]``): session
fixtures ``tiny_family``, ``tiny_llm`` (one real engine for all modules: engines take 15-25 s
to start) and ``run`` (the one event loop engine calls must share).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

if TYPE_CHECKING:
    from orchestrator.backends.llm import LLMDeployment

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_ROOT = REPO_ROOT / ".spillway" / "cache"

VOCAB_SIZE = 512
HEAD_DIM = 32
LORA_RANK = 8
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
_TEXT = (
    "river water spill flow small large model route cost token meter cascade adapter "
    "query answer escalate cheap fast slow confident doubt law math code poem story "
    "the a of to and in is it that for on with as was be by this are or"
)


@dataclass(frozen=True)
class TinyFamily:
    """A base model directory and adapter directories built on it."""

    base: Path
    adapters: dict[str, Path]


def use_project_caches() -> None:
    """Point torch/vLLM caches (and TMPDIR) at the project's state dir, unless set already.

    Engine processes inherit the environment, so compiled CPU kernels are reused across runs.
    """
    for var, sub in (
        ("TORCHINDUCTOR_CACHE_DIR", "inductor"),
        ("VLLM_CACHE_ROOT", "vllm"),
        ("TMPDIR", "tmp"),
    ):
        path = CACHE_ROOT / sub
        path.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault(var, str(path))


def _corpus(n: int = 400) -> list[str]:
    import random

    rng, words = random.Random(0), _TEXT.split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 16))) for _ in range(n)]


def build_tokenizer(out_dir: Path):
    """A byte-level BPE tokenizer of VOCAB_SIZE tokens with a chat template, saved to out_dir."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return fast


def build_base_model(out_dir: Path, *, seed: int = 0) -> Path:
    """A 2-layer random Llama (hidden 64, 2 heads of 32) with its tokenizer, in out_dir."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(out_dir)
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=2 * HEAD_DIM,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=HEAD_DIM,
        max_position_embeddings=1024,
        # Larger than the usual 0.02 so that greedy choices have clear margins.
        initializer_range=0.1,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.save_pretrained(out_dir)
    return out_dir


def build_adapter(base_dir: Path, out_dir: Path, *, seed: int) -> Path:
    """A PEFT LoRA adapter with random non-zero A and B (so it changes the model's output)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    base = LlamaForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(
        r=LORA_RANK,
        lora_alpha=2 * LORA_RANK,
        target_modules=LORA_TARGETS,
        lora_dropout=0.0,
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)
    peft_model = get_peft_model(base, config)
    peft_model.save_pretrained(out_dir)
    return out_dir


def build_family(root: Path, n_adapters: int = 3) -> TinyFamily:
    """Base model under root/base and adapters root/ad0, root/ad1, ..."""
    base = build_base_model(root / "base")
    adapters = {
        f"ad{i}": build_adapter(base, root / f"ad{i}", seed=100 + i) for i in range(n_adapters)
    }
    return TinyFamily(base=base, adapters=adapters)


def hf_greedy(
    base_dir: Path, adapter_dir: Path | None, prompts: list[list[int]], max_tokens: int
) -> list[tuple[list[int], list[float]]]:
    """Per prompt: greedy tokens and their log-probabilities from transformers (+ PEFT).

    Stops after EOS, as vLLM does (the EOS token is part of the answer).
    """
    import torch
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir)
    model.eval()
    eos = model.config.eos_token_id
    answers = []
    for prompt_ids in prompts:
        ids, tokens, logprobs = list(prompt_ids), [], []
        with torch.no_grad():
            for _ in range(max_tokens):
                logits = model(torch.tensor([ids])).logits[0, -1].float()
                lp = torch.log_softmax(logits, dim=-1)
                token = int(torch.argmax(lp))
                tokens.append(token)
                logprobs.append(float(lp[token]))
                ids.append(token)
                if token == eos:
                    break
        answers.append((tokens, logprobs))
    return answers


# -- shared engine fixtures -----------------------------------------------------------------
# Test modules load these with `pytest_plugins = ["tests.integration.tiny_models"]`, so one
# engine (15-25 s to start) serves every module of the session.


def tiny_engine_config(family: TinyFamily, **overrides: object) -> dict[str, object]:
    """An engine config for the tiny family: float32 (deterministic), fewer slots than adapters."""
    config: dict[str, object] = {
        "model": str(family.base),
        "served_name": "tiny-base",
        "adapters": {name: str(path) for name, path in family.adapters.items()},
        "max_loras": 2,
        "max_lora_rank": LORA_RANK,
        "max_model_len": 256,
        "dtype": "float32",
        "kv_cache_gib": 0.25,
        "max_num_seqs": 16,
        "enforce_eager": True,
        "seed": 0,
    }
    return config | overrides


def vllm_children() -> list[str]:
    """Descriptions of this process's live vLLM child processes (engine core, workers)."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            name, cmdline = child.name(), " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "VLLM" in name or "VLLM" in cmdline or "vllm" in cmdline:
            found.append(f"{child.pid} {name}")
    return found


@pytest.fixture(scope="session")
def tiny_family(tmp_path_factory: pytest.TempPathFactory) -> TinyFamily:
    return build_family(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def engine_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for every engine call: AsyncLLM's output task lives on its first loop."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def run(engine_loop: asyncio.AbstractEventLoop) -> Callable[[Awaitable[T]], T]:
    return engine_loop.run_until_complete


@pytest.fixture(scope="session")
def hf_reference() -> Callable[..., list[tuple[list[int], list[float]]]]:
    """``hf_greedy`` as a fixture, so test modules need not import this plugin module."""
    return hf_greedy


@pytest.fixture(scope="session")
def tiny_llm(
    tiny_family: TinyFamily, engine_loop: asyncio.AbstractEventLoop
) -> Iterator[LLMDeployment]:
    """The real engine on the tiny family; shut down (and checked gone) at session end."""
    from orchestrator.backends.llm import LLMDeployment

    use_project_caches()
    llm = LLMDeployment(tiny_engine_config(tiny_family))
    yield llm
    llm.shutdown()
    # Let the engine's output task see its cancellation before the loop closes.
    engine_loop.run_until_complete(asyncio.sleep(0.1))
    deadline = time.monotonic() + 30
    while vllm_children() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not vllm_children(), f"engine processes left after shutdown: {vllm_children()}"
