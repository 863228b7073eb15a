"""A trained :class:`~sbmoe.models.retriever.Retriever` as a PyTerrier transformer, in the pyterrier-dr style.

``SBMoEBiEncoder`` is a ``pyterrier_dr.BiEncoder``: ``.query_encoder()`` adds a ``query_vec`` column,
``.doc_encoder()`` a ``doc_vec`` column, and it composes with pyterrier-dr indexes::

    model = SBMoEBiEncoder.from_pretrained("results/models/.../model", pooling="top1")
    index = pyterrier_dr.FlexIndex("scifact.flex")
    (model >> index).index(documents)           # documents: docno, text (title + " " + text)
    pipeline = model >> index.retriever()
    pt.Experiment([pipeline], topics, qrels, ["nDCG@10"])
"""

from __future__ import annotations

import os

import numpy as np
import pyterrier_dr

from sbmoe.models.retriever import Retriever


class SBMoEBiEncoder(pyterrier_dr.BiEncoder):
    """Queries and documents encoded by one SB-MoE retriever (or its FT baseline)."""

    def __init__(
        self,
        model: Retriever,
        pooling: str = "top1",
        batch_size: int = 64,
        text_field: str = "text",
        verbose: bool = False,
    ):
        super().__init__(batch_size=batch_size, text_field=text_field, verbose=verbose)
        if pooling not in model.config.poolings and not (pooling == "top1" and model.config.poolings == ("none",)):
            raise ValueError(
                f"a {model.config.system} model is read with pooling {model.config.poolings}, not {pooling!r}"
            )
        self.model = model
        self.pooling = pooling

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, pooling: str = "top1", device: str = "cpu", **kwargs):
        return cls(Retriever.load(folder, device), pooling=pooling, **kwargs)

    def _encode(self, texts, kind: str, batch_size: int | None) -> np.ndarray:
        encoded = self.model.encode(
            list(texts), kind, self.pooling, batch_size=batch_size or self.batch_size, progress=self.verbose
        )
        return encoded.embeddings

    def encode_queries(self, texts, batch_size=None) -> np.ndarray:
        return self._encode(texts, "query", batch_size)

    def encode_docs(self, texts, batch_size=None) -> np.ndarray:
        return self._encode(texts, "doc", batch_size)

    def __repr__(self) -> str:
        return f"SBMoEBiEncoder({self.model.config.system}, pooling={self.pooling!r})"
