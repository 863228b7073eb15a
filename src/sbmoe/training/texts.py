"""The pooled embeddings training reads: from a cache of pooled embeddings (a frozen encoder), from the
trained top layers over cached prefix states, or from the encoder on every batch."""

from __future__ import annotations

import torch

from sbmoe.io.collection import Corpus, Qrels, Queries, document_text
from sbmoe.models.prefix import PrefixCache, check_fits, compute_prefix, pad
from sbmoe.models.retriever import Retriever
from sbmoe.training.config import TrainConfig

Pooled = dict[str, tuple[list[str], torch.Tensor]]  # kind ("query"/"doc") -> (ids, pooled embeddings)
Prefix = dict[str, PrefixCache]  # kind ("query"/"doc") -> cached prefix states


class TrainingTexts:
    """Pooled embeddings of training texts: from a pooled cache (frozen encoder), from the trained top
    layers over cached prefix states, or from the encoder on every batch.

    ``depth`` is the first trained layer (None when every layer is trained); the cache it calls for
    is built here unless ``pooled`` or ``prefix`` supplies it.
    """

    def __init__(
        self,
        model: Retriever,
        queries: Queries,
        corpus: Corpus,
        qrels: Qrels,
        config: TrainConfig,
        depth: int | None,
        pooled: Pooled | None = None,
        prefix: Prefix | None = None,
    ):
        self.model, self.queries, self.corpus, self.config, self.depth = model, queries, corpus, config, depth
        self.cache: dict[str, tuple[dict[str, int], torch.Tensor]] | None = None
        self.prefix: Prefix | None = None
        if pooled is not None and not config.frozen:
            raise ValueError("cached pooled embeddings need training.train_layers: 0 (a frozen encoder)")
        if prefix is not None and (config.frozen or depth is None):
            raise ValueError(
                f"cached prefix states need training.train_layers >= 1 and below the encoder's "
                f"number of layers, got {config.train_layers!r}"
            )
        qids = sorted(qrels)
        doc_ids = sorted({d for docs in qrels.values() for d, grade in docs.items() if grade > 0})
        texts = {
            "query": (qids, [queries[q] for q in qids]),
            "doc": (doc_ids, [document_text(corpus[d]) for d in doc_ids]),
        }
        if config.frozen and config.cache_frozen and pooled is None:
            encoder = model._require_encoder()
            pooled = {
                kind: (ids, encoder.pool(strings, kind, config.encode_batch_size))
                for kind, (ids, strings) in texts.items()
            }
        if pooled is not None:
            self.cache = {
                kind: ({i: row for row, i in enumerate(ids)}, matrix) for kind, (ids, matrix) in pooled.items()
            }
        if depth is not None and not config.frozen and config.cache_frozen and prefix is None:
            encoder = model._require_encoder()
            prefix = {
                kind: PrefixCache(
                    [compute_prefix(encoder, ids, strings, kind, depth, batch_size=config.encode_batch_size)]
                )
                for kind, (ids, strings) in texts.items()
            }
        if prefix is not None:
            for kind, cache in prefix.items():
                if cache.depth != depth:
                    raise ValueError(
                        f"cached {kind} prefix states enter layer {cache.depth}, but training.train_layers: "
                        f"{config.train_layers} trains the layers from {depth} up"
                    )
                check_fits(
                    model._require_encoder(), cache.depth, kind, cache.max_length, f"cached {kind} prefix states"
                )
            self.prefix = prefix

    def pooled(self, ids: list[str], kind: str) -> torch.Tensor:
        if self.cache is not None:
            rows, matrix = self.cache[kind]
            try:
                index = [rows[i] for i in ids]
            except KeyError as missing:
                raise KeyError(f"{kind} {missing} is not in the cached pooled embeddings") from None
            return matrix[index].to(self.model.device)
        encoder = self.model._require_encoder()
        if self.prefix is not None:
            hidden, mask = pad(self.prefix[kind].states(ids), self.model.device)
            return encoder.top(hidden, mask, self.depth)
        texts = [self.queries[i] for i in ids] if kind == "query" else [document_text(self.corpus[i]) for i in ids]
        batch = encoder.tokenize(texts, kind)
        if self.config.frozen:
            with torch.no_grad():
                return encoder(**batch)
        if self.depth is not None:
            with torch.no_grad():
                hidden = encoder.prefix(
                    batch["input_ids"], batch["attention_mask"], self.depth, batch.get("token_type_ids")
                )
            return encoder.top(hidden, batch["attention_mask"], self.depth)
        return encoder(**batch)
