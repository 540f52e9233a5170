"""Regenerate ``domains.jsonl``: chat-assistant queries labelled legal/medical/code/general.

Written for Spillway from templates and small vocabularies (no external data). Deterministic:
``python -m router_training.samples.make_domains`` rewrites the same file.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from router_training.samples.vocab import TEMPLATES, VOCAB

PER_LABEL = 400
SEED = 20250101


def fill(template: str, rng: random.Random) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: rng.choice(VOCAB[m.group(1)]), template)


def generate(per_label: int = PER_LABEL, seed: int = SEED) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for label in sorted(TEMPLATES):
        seen: set[str] = set()
        attempts = 0
        while len(seen) < per_label and attempts < per_label * 50:
            attempts += 1
            text = fill(rng.choice(TEMPLATES[label]), rng)
            text = _casing(text, rng)
            if text.lower() not in {s.lower() for s in seen}:
                seen.add(text)
        rows.extend({"text": text, "label": label} for text in sorted(seen))
    rng.shuffle(rows)
    return rows


def _casing(text: str, rng: random.Random) -> str:
    """Users type carelessly: sometimes all lower case, sometimes no question mark."""
    roll = rng.random()
    if roll < 0.25:
        text = text.lower()
    if rng.random() < 0.2:
        text = text.rstrip("?")
    return text[0].upper() + text[1:] if roll >= 0.25 else text


def main() -> None:
    out = Path(__file__).with_name("domains.jsonl")
    with out.open("w", encoding="utf-8") as handle:
        for row in generate():
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
