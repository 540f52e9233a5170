"""Train and evaluate LoRA adapters for the small model on the CPU.

Knows no service: it never imports ``orchestrator``. The heavy libraries (torch, transformers,
peft) are imported inside the functions that need them, so importing this package is cheap.
Reproduce the shipped adapters with ``python -m adapter_training.reproduce --help``.
"""
