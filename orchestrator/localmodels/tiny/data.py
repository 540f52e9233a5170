"""The domain corpus shipped with the package, and its deterministic train/held-out split."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

DOMAINS: tuple[str, ...] = ("legal", "medical", "code", "general")
"""Every domain the models are trained on; `general` has no adapter (it is the base's job)."""

ADAPTER_DOMAINS: tuple[str, ...] = ("legal", "medical", "code")

HELDOUT_EVERY = 10
"""Every 10th line (the 10th, 20th, ...) is held out for evaluation, never trained on."""


def split_lines(lines: list[str], every: int = HELDOUT_EVERY) -> tuple[list[str], list[str]]:
    """Split into (train, held_out): line i (0-based) is held out when (i + 1) % every == 0.

    Blank lines are dropped first, so editing whitespace does not shift the split.
    """
    if every < 2:
        raise ValueError(f"every must be at least 2 (got {every}); 1 would hold out everything")
    kept = [line.strip() for line in lines if line.strip()]
    train = [line for i, line in enumerate(kept) if (i + 1) % every != 0]
    held_out = [line for i, line in enumerate(kept) if (i + 1) % every == 0]
    return train, held_out


def corpus_bytes() -> dict[str, bytes]:
    """The raw corpus file of each domain, keyed by domain (what the fingerprint hashes)."""
    package = resources.files("orchestrator.localmodels.tiny.corpus")
    return {domain: package.joinpath(f"{domain}.txt").read_bytes() for domain in DOMAINS}


@dataclass(frozen=True)
class Corpus:
    """Train and held-out lines per domain."""

    train: dict[str, list[str]]
    held_out: dict[str, list[str]]

    def all_train(self) -> list[str]:
        return [line for domain in DOMAINS for line in self.train[domain]]


def load_corpus() -> Corpus:
    train: dict[str, list[str]] = {}
    held_out: dict[str, list[str]] = {}
    for domain, raw in corpus_bytes().items():
        train[domain], held_out[domain] = split_lines(raw.decode("utf-8").splitlines())
    return Corpus(train=train, held_out=held_out)
