"""The hybrid kind (TF-IDF + static vectors distilled from an encoder) with a tiny local encoder
built here (no hub, no download), and the encoder ('bert') kind's artifact round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from router_training.artifact import ArtifactError, load_router
from router_training.samples import DOMAINS_SAMPLE
from router_training.train import train_router


@pytest.fixture(scope="module")
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


def test_hybrid_artifact_round_trip(tiny_encoder: Path, tmp_path: Path) -> None:
    report = train_router(
        DOMAINS_SAMPLE, tmp_path / "h", kind="hybrid", base_model=tiny_encoder, progress=False
    )
    assert report.kind == "hybrid"
    names = {p.name for p in (tmp_path / "h").iterdir()}
    assert {"embed_vectors.npz", "embed_tokenizer.json", "tfidf.json"} <= names
    router = load_router(tmp_path / "h")
    predictions = router.predict(["How do I parse a CSV file in Python?", "a rash on my arm"])
    assert [p.label for p in predictions] == ["code", "medical"]
    vectors = router._scorer._embedder.embed(["hello", "a much longer query about contracts"])  # type: ignore[attr-defined]
    assert vectors.shape == (2, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)

    (tmp_path / "h" / "embed_vectors.npz").unlink()
    with pytest.raises(ArtifactError, match=r"embed_vectors\.npz is missing"):
        load_router(tmp_path / "h")


def test_encoder_fine_tune_from_a_local_base(tiny_encoder: Path, tmp_path: Path) -> None:
    report = train_router(
        DOMAINS_SAMPLE,
        tmp_path / "b",
        kind="bert",
        base_model=tiny_encoder,
        epochs=1,
        max_length=24,
        runtime="torch",
        progress=False,
    )
    manifest = load_router(tmp_path / "b").manifest
    assert manifest.kind == "bert" and manifest.runtime == "torch"
    assert manifest.pooling == "mean" and manifest.max_length == 24
    assert report.metrics["examples"] == 160  # 10% of the 1,600-query sample
    assert load_router(tmp_path / "b").predict(["hi"])[0].label in report.labels


def test_bert_tiny_from_scratch_is_repeatable_with_a_seed(tmp_path: Path) -> None:
    def train(name: str) -> str:
        return train_router(
            DOMAINS_SAMPLE, tmp_path / name, kind="bert", epochs=1, max_length=24, progress=False
        ).version

    assert train("a") == train("b")
