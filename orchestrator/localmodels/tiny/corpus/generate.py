"""Regenerate the domain corpus files: `python -m orchestrator.localmodels.corpus.generate`.

The shipped `*.txt` files are the source of truth the builder fingerprints; this script is how
they were made (templates filled from small vocabularies, seeded), kept so they can be grown or
changed on purpose. Each domain has its own templates and words, so the domains read clearly
apart: a router or a domain adapter has something real to learn.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

LINES_PER_DOMAIN = 500
SEED = 20261122

TEMPLATES = Path(__file__).resolve().parent / "templates.json"
_SLOT = re.compile(r"\{([A-Za-z_]+?)(\d?)\}")


def _fill(template: str, vocab: dict[str, list[str]], rng: random.Random) -> str:
    """Fill each {slot}; `{slot2}` draws from `slot` too, and `{Slot}` capitalizes.

    A placeholder repeated in one template gets the same word each time; different
    placeholders get different words ("smoking and obesity", never "smoking and smoking").
    """
    chosen: dict[str, str] = {}

    def pick(match: re.Match[str]) -> str:
        name = match.group(1)
        key = match.group(0).lower()
        if key not in chosen:
            taken = set(chosen.values())
            options = [w for w in vocab[name.lower()] if w not in taken]
            chosen[key] = rng.choice(options)
        word = chosen[key]
        return word[0].upper() + word[1:] if name[0].isupper() else word

    return _SLOT.sub(pick, template)


def generate(spec: dict[str, Any], count: int, seed: int) -> list[str]:
    """`count` distinct lines, templates taken in turn so every template is represented.

    A template with few combinations stops contributing once its lines repeat; the attempt
    limit keeps a too-small vocabulary from looping forever.
    """
    templates, vocab = spec["templates"], spec["vocab"]
    rng = random.Random(seed)
    lines: list[str] = []
    seen: set[str] = set()
    for attempt in range(count * 50):
        if len(lines) == count:
            break
        line = _fill(templates[attempt % len(templates)], vocab, rng)
        if line not in seen:
            seen.add(line)
            lines.append(line)
    if len(lines) < count:
        raise ValueError(f"only {len(lines)} distinct lines; add words or templates")
    return lines


def main() -> None:
    out_dir = TEMPLATES.parent
    domains = json.loads(TEMPLATES.read_text(encoding="utf-8"))
    for offset, (name, spec) in enumerate(domains.items()):
        lines = generate(spec, LINES_PER_DOMAIN, SEED + offset)
        (out_dir / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{name}: {len(lines)} lines")


if __name__ == "__main__":
    main()
