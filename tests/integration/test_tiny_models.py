"""The tiny test models (`.spillway/tiny/`), checked with transformers + peft on held-out text.

The session fixture builds them in the default state dir if they are missing or stale: about 2
minutes on 2 cores, a no-op afterwards. The real models' build is `test_real_models.py`.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.localmodels.tiny import (
    ADAPTER_DOMAINS,
    DOMAINS,
    ModelPaths,
    build_tiny_models,
    evaluate_loss,
    load_corpus,
    tiny_model_paths,
)
from orchestrator.localmodels.tiny.build import up_to_date
from orchestrator.localmodels.tiny.spec import DEFAULT_SPEC

MIN_ADAPTER_GAIN = 0.05  # relative held-out loss reduction on the adapter's own domain


@pytest.fixture(scope="session")
def state_dir(repo_root: Path) -> Path:
    return repo_root / ".spillway"


@pytest.fixture(scope="session")
def manifest(state_dir: Path) -> dict[str, Any]:
    return build_tiny_models(state_dir, progress=False)


@pytest.fixture(scope="session")
def paths(manifest: dict[str, Any], state_dir: Path) -> ModelPaths:
    return tiny_model_paths(state_dir)


@pytest.fixture(scope="session")
def base_losses(paths: ModelPaths) -> dict[str, float]:
    held_out = load_corpus().held_out
    return {d: evaluate_loss(paths.small, None, held_out[d]) for d in DOMAINS}


@pytest.mark.parametrize("domain", ADAPTER_DOMAINS)
def test_adapter_lowers_loss_on_its_own_domain(
    paths: ModelPaths, base_losses: dict[str, float], domain: str
) -> None:
    texts = load_corpus().held_out[domain]
    adapted = evaluate_loss(paths.small, paths.adapter(domain), texts)
    gain = (base_losses[domain] - adapted) / base_losses[domain]
    assert gain >= MIN_ADAPTER_GAIN, f"{domain}: base {base_losses[domain]:.3f} -> {adapted:.3f}"


def test_large_model_beats_small_on_every_domain(
    paths: ModelPaths, base_losses: dict[str, float]
) -> None:
    held_out = load_corpus().held_out
    large = {d: evaluate_loss(paths.large, None, held_out[d]) for d in DOMAINS}
    for domain in DOMAINS:
        assert large[domain] < base_losses[domain], (domain, large[domain], base_losses[domain])
    assert sum(large.values()) < 0.9 * sum(base_losses.values())


def test_manifest_records_what_the_models_score(
    manifest: dict[str, Any], base_losses: dict[str, float]
) -> None:
    for domain in DOMAINS:
        assert manifest["models"]["small"]["heldout_loss"][domain] == pytest.approx(
            base_losses[domain], abs=1e-3
        )
    assert manifest["models"]["large"]["parameters"] > manifest["models"]["small"]["parameters"]
    assert set(manifest["adapters"]) == set(ADAPTER_DOMAINS)


def test_model_config_suits_vllm_cpu(paths: ModelPaths) -> None:
    from transformers import AutoConfig

    for model_dir in (paths.small, paths.large):
        config = AutoConfig.from_pretrained(str(model_dir))
        assert config.head_dim in (32, 64, 80, 96, 112, 128)
        assert config.max_position_embeddings >= 1024
        assert (model_dir / "model.safetensors").is_file()


def test_chat_template_renders_and_round_trips(paths: ModelPaths) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(paths.small))
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is a tort?"},
    ]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == "<s><|system|>\nBe brief.</s>\n<|user|>\nWhat is a tort?</s>\n<|assistant|>\n"
    encoded: Any = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    ids = list(encoded["input_ids"])
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    assert tokenizer.decode(ids) == text
    assert tokenizer.convert_tokens_to_ids("<|assistant|>") in ids
    sample = "SELECT name FROM users WHERE age > 30; -- naïve ✓"
    encoded = tokenizer(sample, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(encoded) == sample


def test_small_model_answers_and_stops_with_eos(paths: ModelPaths) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(paths.small))
    model: Any = AutoModelForCausalLM.from_pretrained(str(paths.small))
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "The patient presented with"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    inputs = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=60, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1] :].tolist()
    assert tokenizer.eos_token_id in new, tokenizer.decode(new)
    assert len(new) > 2


def test_second_build_is_a_fast_no_op(state_dir: Path, manifest: dict[str, Any]) -> None:
    root = tiny_model_paths(state_dir).root
    before = {p: os.stat(p).st_mtime_ns for p in root.rglob("*")}
    started = time.perf_counter()
    again = build_tiny_models(state_dir, progress=False)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0
    assert again["fingerprint"] == manifest["fingerprint"]
    assert again["built_at"] == manifest["built_at"]
    assert {p: os.stat(p).st_mtime_ns for p in root.rglob("*")} == before


def test_rebuild_swaps_in_whole_and_removes_interrupted_leftovers(tmp_path: Path) -> None:
    """With a 2-step spec (seconds, not minutes): the build/replace machinery itself."""
    tiny = replace(
        DEFAULT_SPEC,
        small=replace(DEFAULT_SPEC.small, steps=2),
        large=replace(DEFAULT_SPEC.large, steps=2),
        adapter=replace(DEFAULT_SPEC.adapter, steps=2),
    )
    leftover = tmp_path / "tiny.tmp-999999"
    (leftover / "small").mkdir(parents=True)
    first = build_tiny_models(tmp_path, progress=False, spec=tiny)
    assert not leftover.exists()
    assert up_to_date(tmp_path, tiny) == first
    assert up_to_date(tmp_path) is None  # the default spec has another fingerprint
    second = build_tiny_models(tmp_path, force=True, progress=False, spec=tiny)
    assert second["fingerprint"] == first["fingerprint"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny", "tiny.lock"]
    assert up_to_date(tmp_path, tiny) == second
