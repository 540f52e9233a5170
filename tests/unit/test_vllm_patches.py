"""The CPU LoRA op fix at the op level: upstream is wrong for index -1, the patch is right."""

from __future__ import annotations

import importlib.util
import logging
import types

import pytest

torch = pytest.importorskip("torch")
lora_ops = pytest.importorskip("vllm.lora.ops.torch_ops.lora_ops")

from orchestrator.backends import vllm_patches  # noqa: E402

SLOTS, RANK, HIDDEN, OUT = 2, 4, 8, 6
# Token 1 and 3 belong to no adapter; slot 1 is the last slot, the one -1 used to select.
INDICES = torch.tensor([0, -1, 1, -1])
NO_ADAPTER = INDICES < 0


@pytest.fixture(scope="module")
def upstream() -> types.ModuleType:
    """A private copy of vLLM's unpatched lora_ops module, whatever the process has patched."""
    spec = importlib.util.spec_from_file_location("_upstream_lora_ops", lora_ops.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tensors() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "x": torch.randn(len(INDICES), HIDDEN, generator=gen),
        "a": torch.randn(SLOTS, 1, RANK, HIDDEN, generator=gen),  # vLLM's stacked layout
        "buf": torch.randn(len(INDICES), RANK, generator=gen),
        "b": torch.randn(SLOTS, 1, OUT, RANK, generator=gen),
        "y": torch.randn(len(INDICES), OUT + 3, generator=gen),
    }


def _shrink(ops, t):
    y = t["buf"].clone()
    ops.bgmv_shrink(t["x"], t["a"], y, INDICES, 0.5)
    return y


def _expand(ops, t, add_inputs):
    y = t["y"].clone()
    ops.bgmv_expand(t["buf"], t["b"], y, INDICES, add_inputs)
    return y


def _expand_slice(ops, t, add_inputs):
    y = t["y"].clone()
    ops.bgmv_expand_slice(t["buf"], t["b"], y, INDICES, 2, OUT, add_inputs)
    return y


CASES = {
    "shrink": (_shrink, "buf"),
    "expand": (lambda ops, t: _expand(ops, t, False), "y"),
    "expand_add": (lambda ops, t: _expand(ops, t, True), "y"),
    "expand_slice": (lambda ops, t: _expand_slice(ops, t, False), "y"),
    "expand_slice_add": (lambda ops, t: _expand_slice(ops, t, True), "y"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_upstream_changes_rows_without_adapter(upstream, tensors, case):
    """The bug this module exists for: rows with index -1 get the last slot's adapter."""
    run, before = CASES[case]
    out = run(upstream, tensors)
    assert not torch.equal(out[NO_ADAPTER], tensors[before][NO_ADAPTER])


@pytest.mark.parametrize("case", sorted(CASES))
def test_patched_leaves_rows_without_adapter_alone(upstream, tensors, case):
    run, before = CASES[case]
    out = run(vllm_patches, tensors)
    expected = run(upstream, tensors)
    assert torch.equal(out[NO_ADAPTER], tensors[before][NO_ADAPTER])
    assert torch.equal(out[~NO_ADAPTER], expected[~NO_ADAPTER])


def test_patched_ops_match_upstream_when_every_token_has_an_adapter(upstream, tensors):
    indices = torch.tensor([1, 0, 0, 1])
    for name in vllm_patches.PATCHED_NAMES:
        args = (tensors["buf"], tensors["b"]) if "expand" in name else (tensors["x"], tensors["a"])
        target = "y" if "expand" in name else "buf"
        extra = (2, OUT) if name.endswith("slice") else ()
        mine, theirs = tensors[target].clone(), tensors[target].clone()
        getattr(vllm_patches, name)(*args, mine, indices, *extra)
        getattr(upstream, name)(*args, theirs, indices, *extra)
        assert torch.equal(mine, theirs), name


@pytest.fixture
def unpatched(monkeypatch, upstream):
    """Every rebound module name set back to upstream's function for the test."""
    for module_name in (vllm_patches.OPS_MODULE, *vllm_patches.REBIND_MODULES):
        module = importlib.import_module(module_name)
        for name in vllm_patches.PATCHED_NAMES:
            monkeypatch.setattr(module, name, getattr(upstream, name))


def test_apply_rebinds_every_name_and_fixes_the_prefill_path(unpatched, tensors):
    assert not vllm_patches.is_patched()
    assert vllm_patches.apply() is True
    assert vllm_patches.is_patched()
    assert vllm_patches.apply() is True  # idempotent

    punica_cpu = importlib.import_module("vllm.lora.punica_wrapper.punica_cpu")
    assert punica_cpu.bgmv_expand is vllm_patches.bgmv_expand
    # The prefill (sgmv) ops are upstream's and reach bgmv through lora_ops' globals.
    y = tensors["buf"].clone()
    seq_lens = torch.ones(len(INDICES), dtype=torch.long)
    punica_cpu.sgmv_shrink(tensors["x"], tensors["a"], y, None, seq_lens, INDICES, 4, 1, 4, 1.0)
    assert torch.equal(y[NO_ADAPTER], tensors["buf"][NO_ADAPTER])


def test_apply_skips_other_vllm_versions(unpatched, monkeypatch, caplog):
    import vllm

    monkeypatch.setattr(vllm, "__version__", "0.33.0")
    with caplog.at_level(logging.WARNING, logger=vllm_patches.logger.name):
        vllm_patches.logger.addHandler(caplog.handler)
        try:
            assert vllm_patches.apply() is False
        finally:
            vllm_patches.logger.removeHandler(caplog.handler)
    assert not vllm_patches.is_patched()
    assert "0.33.0" in caplog.text


def test_apply_skips_when_functions_moved(unpatched, monkeypatch):
    punica_cpu = importlib.import_module("vllm.lora.punica_wrapper.punica_cpu")
    monkeypatch.delattr(punica_cpu, "bgmv_expand_slice")
    assert vllm_patches.apply() is False
    assert lora_ops.bgmv_expand is not vllm_patches.bgmv_expand
