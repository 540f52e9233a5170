"""The embedded default's models: real small and large instruct LLMs from pinned PyPI packages,
converted once into `.spillway/models/`, the project's LoRA adapters, and the domain router.

`spillway models build` runs `build.build_models`; `tiny/` holds the tiny stand-ins that fast
tests use. Importing this package imports no torch.
"""
