"""The shipped corpus and its deterministic train/held-out split (pure, no torch)."""

from __future__ import annotations

import pytest

from orchestrator.localmodels.tiny.data import DOMAINS, HELDOUT_EVERY, load_corpus, split_lines


def test_every_tenth_line_is_held_out() -> None:
    lines = [f"line {i}" for i in range(1, 31)]
    train, held_out = split_lines(lines)
    assert held_out == ["line 10", "line 20", "line 30"]
    assert len(train) == 27
    assert "line 9" in train and "line 11" in train


def test_split_ignores_blank_lines_and_strips() -> None:
    lines = ["", *[f" l{i} " for i in range(1, 11)], "   "]
    train, held_out = split_lines(lines)
    assert held_out == ["l10"]
    assert train[0] == "l1"


def test_split_is_deterministic_and_disjoint() -> None:
    lines = [f"sentence number {i}" for i in range(57)]
    assert split_lines(lines) == split_lines(list(lines))
    train, held_out = split_lines(lines)
    assert not set(train) & set(held_out)
    assert len(train) + len(held_out) == 57


def test_split_rejects_an_interval_that_holds_out_everything() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        split_lines(["a", "b"], every=1)


def test_corpus_has_a_few_hundred_lines_per_domain() -> None:
    corpus = load_corpus()
    for domain in DOMAINS:
        total = len(corpus.train[domain]) + len(corpus.held_out[domain])
        assert total >= 300, domain
        assert len(corpus.held_out[domain]) == total // HELDOUT_EVERY
        assert not set(corpus.train[domain]) & set(corpus.held_out[domain])


def test_domains_share_no_lines_and_have_their_own_words() -> None:
    corpus = load_corpus()
    text = {d: " ".join(corpus.train[d] + corpus.held_out[d]).lower() for d in DOMAINS}
    for i, a in enumerate(DOMAINS):
        for b in DOMAINS[i + 1 :]:
            assert not set(corpus.train[a]) & set(corpus.train[b]), (a, b)
    markers = {"legal": "contract", "medical": "patient", "code": "return", "general": "park"}
    for domain, word in markers.items():
        own = text[domain].count(word)
        others = max(text[d].count(word) for d in DOMAINS if d != domain)
        assert own > 5 * max(1, others), (domain, word, own, others)
