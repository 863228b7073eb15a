"""Encoder pooling, normalisation, max lengths and ordering; the embedded all-MiniLM-L6-v2 against
sentence-transformers."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from sbmoe.models.encoder import EMBEDDED_MODEL, Encoder, EncoderConfig, resolve_model_path

TEXTS = [
    "w1 w2 w3",
    "w4",
    "w5 w6 w7 w8 w9 w10 w11",
    "w12 w13",
    "w14 w15 w16 w17",
    "w18 w19 w20 w21 w22 w23 w24 w25 w26",
    "w27",
]


def _hidden(encoder: Encoder, batch):
    with torch.no_grad():
        return encoder.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state


def test_mean_pooling_equals_hand_computation(encoder_config):
    encoder = Encoder(encoder_config()).eval()
    texts = ["w1 w2 w3 w4 w5", "w6"]
    batch = encoder.tokenize(texts, "doc")
    mask = batch["attention_mask"]
    assert mask.sum(dim=1).tolist() == [7, 3]  # [CLS] + words + [SEP]; the second row is padded
    hidden = _hidden(encoder, batch)
    expected = torch.stack([hidden[0, :7].mean(dim=0), hidden[1, :3].mean(dim=0)])
    with torch.no_grad():
        pooled = encoder(**batch)
    assert pooled.shape == (2, 32)
    torch.testing.assert_close(pooled, expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(pooled[1], hidden[1].mean(dim=0), atol=1e-3)  # padding is not averaged in


def test_cls_pooling(encoder_config):
    encoder = Encoder(encoder_config(pooling="cls")).eval()
    batch = encoder.tokenize(["w1 w2 w3", "w4"], "query")
    with torch.no_grad():
        pooled = encoder(**batch)
    torch.testing.assert_close(pooled, _hidden(encoder, batch)[:, 0])
    with pytest.raises(ValueError, match="pooling"):
        EncoderConfig("x", pooling="max")


def test_normalize_gives_unit_norms(encoder_config):
    plain = Encoder(encoder_config())
    normalized = Encoder(encoder_config(normalize=True), model=plain.model, tokenizer=plain.tokenizer)
    raw = plain.pool(TEXTS, "doc", progress=False)
    unit = normalized.pool(TEXTS, "doc", progress=False)
    assert not torch.allclose(raw.norm(dim=1), torch.ones(len(TEXTS)), atol=1e-3)
    torch.testing.assert_close(unit.norm(dim=1), torch.ones(len(TEXTS)))
    torch.testing.assert_close(unit, raw / raw.norm(dim=1, keepdim=True), atol=1e-6, rtol=1e-5)


def test_max_lengths_per_kind(encoder_config):
    encoder = Encoder(encoder_config(query_max_length=5, doc_max_length=9))
    long_text = " ".join(f"w{i}" for i in range(30))
    assert encoder.tokenize([long_text], "query")["input_ids"].shape == (1, 5)
    assert encoder.tokenize([long_text], "doc")["input_ids"].shape == (1, 9)
    assert encoder.tokenize(["w1"], "doc")["input_ids"].shape == (1, 3)  # short texts are not padded up
    ids = encoder.tokenize([long_text], "query")["input_ids"][0].tolist()
    assert ids[0] == encoder.tokenizer.cls_token_id and ids[-1] == encoder.tokenizer.sep_token_id
    with pytest.raises(ValueError, match="kind"):
        encoder.max_length("passage")
    with pytest.raises(ValueError, match="query_max_length"):
        EncoderConfig("x", query_max_length=0)


def test_truncation_changes_the_embedding_of_long_texts(encoder_config):
    short = Encoder(encoder_config(doc_max_length=4))
    long = Encoder(encoder_config(doc_max_length=64), model=short.model, tokenizer=short.tokenizer)
    text = [" ".join(f"w{i}" for i in range(20))]
    assert not torch.allclose(short.pool(text, "doc", progress=False), long.pool(text, "doc", progress=False))
    # a text that fits is unaffected by the limit
    fits = ["w1 w2"]
    torch.testing.assert_close(short.pool(fits, "doc", progress=False), long.pool(fits, "doc", progress=False))


def test_pool_returns_input_order(encoder_config):
    encoder = Encoder(encoder_config())
    encoder.train()
    pooled = encoder.pool(TEXTS, "doc", batch_size=2, progress=False)
    assert encoder.training  # the mode is restored
    assert pooled.shape == (len(TEXTS), 32)
    encoder.eval()
    with torch.no_grad():
        single = torch.cat([encoder(**encoder.tokenize([text], "doc")) for text in TEXTS])
    torch.testing.assert_close(pooled, single, atol=1e-5, rtol=1e-4)
    # the texts are of distinct lengths, so an order mix-up would show
    distances = torch.cdist(pooled, pooled) + torch.eye(len(TEXTS))
    assert distances.min() > 1e-2
    assert encoder.pool([], "doc", progress=False).shape == (0, 32)


def test_lowercase_option(encoder_config):
    encoder = Encoder(encoder_config(lowercase=True))
    assert (
        encoder.tokenize(["W1 W2"], "query")["input_ids"].tolist()
        == encoder.tokenize(["w1 w2"], "query")["input_ids"].tolist()
    )


def test_save_and_reload(tmp_path, encoder_config):
    encoder = Encoder(encoder_config())
    encoder.save(tmp_path / "enc")
    again = Encoder(encoder_config(name_or_path=str(tmp_path / "enc")))
    assert torch.equal(encoder.pool(TEXTS, "doc", progress=False), again.pool(TEXTS, "doc", progress=False))


def test_resolve_model_path():
    assert resolve_model_path("some/hub-id") == "some/hub-id"
    path = resolve_model_path(EMBEDDED_MODEL)
    assert (__import__("pathlib").Path(path) / "config.json").is_file()


SAMPLES = [
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "Mixture of experts models route each input to a specialised sub-network.",
    "Dense retrieval encodes queries and documents into a shared vector space.",
    "The mitochondria is the powerhouse of the cell.",
    "BRCA1 mutations increase the risk of breast and ovarian cancer.",
    "a",
    "Stock markets fell sharply on Tuesday after the central bank raised interest rates by half a point.",
    " ".join(["long"] * 400),  # truncated at 256 tokens by both
    "Ünïcödé text, with punctuation!? And numbers: 3.14159 and 42.",
]


def test_embedded_minilm_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    torch.set_num_threads(2)
    encoder = Encoder(EncoderConfig(EMBEDDED_MODEL, normalize=True, query_max_length=256, doc_max_length=256))
    assert encoder.hidden_size == 384
    ours = encoder.pool(SAMPLES, "doc", batch_size=4, progress=False).numpy()
    reference = SentenceTransformer(resolve_model_path(EMBEDDED_MODEL), device="cpu")
    assert reference.max_seq_length == 256
    theirs = reference.encode(SAMPLES, batch_size=4, convert_to_numpy=True)
    cosine = (ours * theirs).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    assert cosine.min() >= 0.9999, cosine
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    queries = encoder.pool(SAMPLES[:3], "query", progress=False).numpy()
    np.testing.assert_allclose(queries, ours[:3], atol=1e-5)  # same limits for both kinds
    assert time.perf_counter() - started < 60
