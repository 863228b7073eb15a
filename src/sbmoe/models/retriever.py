"""The study's retrieval models: an encoder, optionally followed by an SB-MoE block.

Every variant is a :class:`ModelConfig` of one class, :class:`Retriever`:

``finetune``     the encoder alone (the paper's FT baseline);
``sbmoe``        the SB-MoE block with ``num_experts`` experts and a learned noisy top-1 gate;
``random-gate``  the block with a uniformly random expert per text (seeded), in training and inference;
``adapter``      a single expert and no gate: the capacity of the block without routing;
``regular-moe``  no block: the feed-forward sub-layers of ``moe_layers`` become ``num_experts`` upcycled
                 experts with a token-level top-``top_k`` router (:mod:`sbmoe.models.regular_moe`).

Each variant's entry in :mod:`sbmoe.systems.registry` says which settings it takes and names its block
(:mod:`sbmoe.models.blocks`). ``combination`` (``paper`` or ``learned``, see :mod:`sbmoe.models.moe`)
applies to every variant with a block after the encoder. At inference an ``sbmoe`` model is read with
``pooling="top1"`` or ``"all"``; one checkpoint serves both.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sbmoe.io.atomic import atomic_path
from sbmoe.io.encoded import Encoded
from sbmoe.io.errors import DataFormatError, first_line, read_json
from sbmoe.models.blocks import block_builder
from sbmoe.models.encoder import Encoder, EncoderConfig
from sbmoe.models.moe import RandomGate, Routing, SBMoE
from sbmoe.models.prefix import PrefixStates, pool_prefix
from sbmoe.systems.names import system_name
from sbmoe.systems.registry import COMBINATIONS, VARIANTS, Variant, trained_variants


@dataclass
class ModelConfig:
    """A variant of the study, with everything needed to rebuild it."""

    encoder: EncoderConfig
    variant: str = "finetune"
    num_experts: int = 6
    combination: str = "paper"
    seed: int = 42
    top_k: int = 2  # regular-moe: experts per token
    moe_layers: list[int] = field(default_factory=lambda: [-1])  # regular-moe: layers (-1 is the top one)
    encoder_trained: bool = True  # False when training kept the encoder frozen (it is then not saved)
    frozen_layers: int = 0  # with a trained encoder: the bottom layers training left at their pretrained weights

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig(**self.encoder)
        if self.variant not in trained_variants():
            raise ValueError(f"variant must be one of {trained_variants()}, got {self.variant!r}")
        if self.combination not in COMBINATIONS:
            raise ValueError(f"combination must be one of {COMBINATIONS}, got {self.combination!r}")
        spec = self.spec
        if "experts" not in spec.parts:
            self.num_experts = spec.fixed.get("num_experts", 0)  # the adapter's one expert; none without a block
        elif self.num_experts < 2:
            raise ValueError(f"variant {self.variant!r} needs num_experts >= 2, got {self.num_experts}")
        if "top_k" not in spec.keys:
            self.top_k = 0
        elif not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f"top_k must be in [1, num_experts={self.num_experts}], got {self.top_k}")
        if "moe_layers" not in spec.keys:
            self.moe_layers = []
        elif not self.moe_layers or not all(isinstance(i, int) and not isinstance(i, bool) for i in self.moe_layers):
            raise ValueError(f"moe_layers must be a non-empty list of layer indices, got {self.moe_layers!r}")

    @property
    def spec(self) -> Variant:
        """The variant's registry entry."""
        return VARIANTS[self.variant]

    @property
    def has_gate(self) -> bool:
        return self.spec.gated

    @property
    def system(self) -> str:
        """The system's name in file paths and tables, e.g. ``sbmoe-paper-e6``."""
        return system_name(self.variant, self.combination, self.num_experts, self.top_k or None)

    @property
    def poolings(self) -> tuple[str, ...]:
        return self.spec.poolings

    def to_dict(self) -> dict:
        return asdict(self)


class Retriever(nn.Module):
    """A bi-encoder: one shared encoder for queries and documents, then the variant's SB-MoE block."""

    def __init__(self, config: ModelConfig, encoder: Encoder | None = None, hidden_size: int | None = None):
        """Build the encoder (or take ``encoder``) and the block. With ``hidden_size`` and no encoder,
        only the block is built: enough to train on or apply to cached pooled embeddings."""
        super().__init__()
        self.config = config
        self.encoder = encoder if encoder is not None or hidden_size else Encoder(config.encoder)
        self.hidden_size = self.encoder.hidden_size if self.encoder is not None else hidden_size
        self.moe: SBMoE | None = None  # the block after the encoder, if the variant has one
        if config.spec.block is not None:
            build = block_builder(config.spec.block)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed)  # the block's initialisation depends on the seed only
                self.moe = build(self)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device if any(True for _ in self.parameters()) else torch.device("cpu")

    def _require_encoder(self) -> Encoder:
        if self.encoder is None:
            raise ValueError(
                "this model was loaded without its encoder (block only); it can only encode pooled embeddings"
            )
        return self.encoder

    def represent(self, pooled: torch.Tensor, pooling: str = "top1") -> tuple[torch.Tensor, Routing | None]:
        """Apply the block (if any) to pooled encoder embeddings."""
        if self.moe is None:
            return pooled, None
        return self.moe(pooled, "top1" if pooling == "none" else pooling)

    def forward(self, texts: list[str], kind: str, pooling: str = "top1"):
        encoder = self._require_encoder()
        return self.represent(encoder(**encoder.tokenize(texts, kind)), pooling)

    def encode(
        self, texts: list[str], kind: str, pooling: str = "top1", batch_size: int = 64, progress: bool = True
    ) -> Encoded:
        """Encode ``texts`` (``kind`` is ``query`` or ``doc``) and route them, in input order."""
        pooled = self._require_encoder().pool(texts, kind, batch_size=batch_size, progress=progress)
        return self.encode_pooled(pooled, pooling)

    def pool_prefix(self, prefix: PrefixStates, batch_size: int = 64, progress: bool = True) -> torch.Tensor:
        """The encoder's pooled embeddings of cached texts (:mod:`sbmoe.models.prefix`), from the layers above
        the cache's depth; :meth:`encode_pooled` then applies the block. The cache must come from this
        model's encoder below that depth, so a trained model needs one no deeper than the layers its
        training left frozen."""
        encoder = self._require_encoder()
        if self.config.encoder_trained and prefix.depth > self.config.frozen_layers:
            raise ValueError(
                f"the cache holds the states entering layer {prefix.depth}, but this model trained its "
                f"layers from {self.config.frozen_layers} up: a cache of depth <= {self.config.frozen_layers} is needed"
            )
        below = [int(index) for index in encoder.feed_forward if int(index) < prefix.depth]
        if below:
            raise ValueError(f"the cache skips layer(s) {below}, whose feed-forward sub-layer this model replaced")
        return pool_prefix(encoder, prefix, batch_size, progress)

    @torch.no_grad()
    def encode_pooled(self, pooled: torch.Tensor, pooling: str = "top1", batch_size: int = 4096) -> Encoded:
        """Apply the block to pooled encoder embeddings, e.g. ones cached for a frozen encoder.

        A random gate restarts its seeded sequence, so the same texts in the same order are
        routed the same way on every pass.
        """
        self.eval()
        if self.moe is not None and isinstance(self.moe.gate, RandomGate):
            self.moe.gate.reseed()
        device = self.device
        embeddings, experts, gates = [], [], []
        for start in range(0, len(pooled), batch_size):
            out, routing = self.represent(pooled[start : start + batch_size].to(device), pooling)
            embeddings.append(out.float().cpu())
            if routing is not None and self.config.has_gate:
                experts.append(routing.experts.cpu())
                gates.append(routing.weights.float().cpu())
        n = len(pooled)
        return Encoded(
            embeddings=torch.cat(embeddings).numpy() if n else np.zeros((0, self.hidden_size), np.float32),
            experts=torch.cat(experts).numpy() if experts else np.full(n, -1, dtype=np.int64),
            gate=torch.cat(gates).numpy() if gates else np.zeros((n, 0), dtype=np.float32),
        )

    def save(self, folder: str | os.PathLike) -> None:
        """Write ``config.json``, the block's weights, and the encoder if it was trained; atomically."""
        with atomic_path(folder) as tmp:
            tmp.mkdir()
            config = self.config.to_dict()
            if self.config.encoder_trained:
                self._require_encoder().save(tmp / "encoder")
                config["encoder"]["name_or_path"] = "encoder"  # relative to the model folder
            config["hidden_size"] = self.hidden_size
            (tmp / "config.json").write_text(json.dumps(config, indent=1) + "\n")
            if self.moe is not None:
                torch.save(self.moe.state_dict(), tmp / "moe.pt")
            if self.encoder is not None and len(self.encoder.feed_forward):
                torch.save(self.encoder.feed_forward.state_dict(), tmp / "regular_moe.pt")

    @classmethod
    def load(
        cls, folder: str | os.PathLike, device: str | torch.device = "cpu", with_encoder: bool = True
    ) -> Retriever:
        """Load a saved model; ``with_encoder=False`` loads the block alone (see :meth:`__init__`)."""
        folder = Path(folder)
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise DataFormatError(folder, None, "not a saved model folder (config.json missing)")
        data = read_json(config_path, "a model configuration in JSON")

        def fail(message: str):
            raise DataFormatError(config_path, None, message)

        if not isinstance(data, dict):
            fail("expected a JSON object (the model's configuration)")
        known = {f.name for f in dataclasses.fields(ModelConfig)} | {"hidden_size"}
        if set(data) - known:
            fail(f"unknown key(s) {sorted(set(data) - known)} (expected {sorted(known)})")
        hidden_size = data.pop("hidden_size", None)
        if type(hidden_size) is not int or hidden_size < 1:
            fail(f"'hidden_size' must be a positive integer, got {hidden_size!r}")
        if not isinstance(data.get("encoder"), dict) or not isinstance(data["encoder"].get("name_or_path"), str):
            fail("'encoder' must be an object with a string 'name_or_path'")
        if data.get("encoder_trained"):
            data["encoder"]["name_or_path"] = str(folder / data["encoder"]["name_or_path"])
            if with_encoder and not Path(data["encoder"]["name_or_path"]).is_dir():
                raise DataFormatError(
                    data["encoder"]["name_or_path"],
                    None,
                    "missing the trained encoder's folder (config.json says encoder_trained)",
                )
        try:
            config = ModelConfig(**data)
        except (TypeError, ValueError) as error:
            fail(f"invalid model configuration: {first_line(error)}")
        model = cls(config, hidden_size=None if with_encoder else hidden_size)
        if model.moe is not None:
            model.moe.load_state_dict(_block_weights(folder / "moe.pt", model, model.moe, "block"))
        if model.encoder is not None and len(model.encoder.feed_forward):  # MoE layers inside the encoder
            feed_forward = model.encoder.feed_forward
            feed_forward.load_state_dict(_block_weights(folder / "regular_moe.pt", model, feed_forward, "MoE layers"))
        return model.to(device)


def _block_weights(path: Path, model: Retriever, block: nn.Module, what: str) -> dict[str, torch.Tensor]:
    """The saved state of ``block`` (``model``'s SB-MoE block or a Regular MoE's MoE layers), checked against it."""
    if not path.is_file():
        raise DataFormatError(path, None, f"missing the weights of the {model.config.system} {what}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file fails inside torch or pickle in many ways
        raise DataFormatError(
            path, None, f"not a readable PyTorch state dict (truncated or corrupt?): {first_line(error)}"
        ) from None
    expected = block.state_dict()
    if not isinstance(state, dict):
        raise DataFormatError(
            path, None, f"holds a {type(state).__name__}, not the state dict of the {model.config.system} {what}"
        )
    for names, problem in (
        (sorted(set(expected) - set(state)), "lacks"),
        (sorted(set(state) - set(expected)), "has extra"),
    ):
        if names:
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            raise DataFormatError(
                path,
                None,
                f"{problem} weights for the {model.config.system} {what} of config.json "
                f"({shown}): is it another model's?",
            )
    for name, tensor in expected.items():
        if not isinstance(state[name], torch.Tensor) or state[name].shape != tensor.shape:
            shape = tuple(state[name].shape) if isinstance(state[name], torch.Tensor) else type(state[name]).__name__
            raise DataFormatError(
                path,
                None,
                f"{name!r} has shape {shape}, expected {tuple(tensor.shape)} "
                f"(hidden size {model.hidden_size}, {model.config.num_experts} experts)",
            )
    return state
