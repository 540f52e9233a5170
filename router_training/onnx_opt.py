"""Make an exported encoder graph fast on CPU: ONNX Runtime's BERT fusions, int8 weights.

``fused``: ``onnxruntime.transformers.optimizer`` rewrites the exported graph into its fused
operators (EmbedLayerNormalization, Attention, SkipLayerNormalization, BiasGelu). It needs
the encoder exported with eager attention (the SDPA graph is not recognised).
``int8``: the fused graph, then dynamic quantization (int8 weights of every MatMul/Attention,
one scale per output channel, activations quantized per batch at run time; no calibration
data needed). Per-channel scales keep the out-of-scope margin that one scale per tensor lost
on CLINC (docs/router.md, "The gated ensemble"), at the same speed.

The optimised graph replaces ``model.onnx`` in the artifact; the safetensors weights stay as
they were trained, so the torch runtime still gives the unquantized model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

__all__ = ["ONNX_OPTIMIZATIONS", "OnnxOptimization", "optimize_onnx"]

log = logging.getLogger("router_training")
OnnxOptimization = Literal["none", "fused", "int8"]
ONNX_OPTIMIZATIONS: tuple[str, ...] = ("none", "fused", "int8")


def optimize_onnx(
    path: Path, level: OnnxOptimization, *, num_heads: int, hidden_size: int
) -> dict[str, int]:
    """Rewrite ``path`` in place for ``level``; return the fused operator counts."""
    if level == "none":
        return {}
    fused_path = path.with_name(path.stem + ".fused.onnx")
    counts = _fuse(path, fused_path, num_heads=num_heads, hidden_size=hidden_size)
    if level == "int8":
        _quantize_int8(fused_path, path)
        fused_path.unlink()
    else:
        fused_path.replace(path)
    log.info("ONNX graph %s: %s", level, counts)
    return counts


def _fuse(source: Path, target: Path, *, num_heads: int, hidden_size: int) -> dict[str, int]:
    from onnxruntime.transformers.optimizer import optimize_model

    model = optimize_model(
        str(source), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=1
    )
    model.save_model_to_file(str(target))
    stats = model.get_fused_operator_statistics()
    return {name: int(count) for name, count in sorted(stats.items()) if count}


def _quantize_int8(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        # the fused contrib operators have no ONNX shape inference: declare their float type
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
