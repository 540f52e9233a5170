"""A tiny local BERT encoder for router tests (no hub, no download); a pytest plugin:
``pytest_plugins = ["tests.integration.router_encoders"]``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router_training.samples import DOMAINS_SAMPLE


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 1-layer BERT with a WordPiece vocabulary from the sample."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import WordPieceTrainer
    from transformers import BertConfig, BertModel

    texts = [json.loads(line)["text"] for line in DOMAINS_SAMPLE.read_text().splitlines()]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(texts, WordPieceTrainer(vocab_size=600, special_tokens=specials))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[(t, tokenizer.token_to_id(t)) for t in ("[CLS]", "[SEP]")],
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    out = tmp_path_factory.mktemp("encoder")
    BertModel(config).save_pretrained(out)
    tokenizer.save(str(out / "tokenizer.json"))
    return out
