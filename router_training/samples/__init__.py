"""Labelled query samples shipped with Spillway (written for the project, not copied).

``DOMAINS_SAMPLE``: chat-assistant queries labelled legal / medical / code / general, the
training data of the local default router (see ``make_domains.py`` to regenerate it).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DOMAINS_SAMPLE"]

DOMAINS_SAMPLE = Path(__file__).with_name("domains.jsonl")
