"""The study's retrieval models: an encoder, optionally followed by an SB-MoE block.

Every variant is a :class:`ModelConfig` of one class, :class:`Retriever`:

``finetune``     the encoder alone (the paper's FT baseline);
``sbmoe``        the SB-MoE block with ``num_experts`` experts and a learned noisy top-1 gate;
``random-gate``  the block with a uniformly random expert per text (seeded), in training and inference;
``adapter``      a single expert and no gate: the capacity of the block without routing.

``combination`` (``paper`` or ``learned``, see :mod:`sbmoe.moe`) applies to every variant with a block.
At inference an ``sbmoe`` model is read with ``pooling="top1"`` or ``"all"``; one checkpoint serves both.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .atomic import atomic_path
from .encoder import Encoder, EncoderConfig
from .moe import COMBINATIONS, RandomGate, Routing, SBMoE

VARIANTS = ("finetune", "sbmoe", "random-gate", "adapter")


def system_name(variant: str, combination: str = "paper", num_experts: int | None = None) -> str:
    """The name of a system in paths and tables: ``finetune``, ``adapter-paper``, ``sbmoe-learned-e6``,
    ``random-gate-e6`` (``zeroshot`` names an untrained encoder)."""
    if variant == "finetune":
        return "finetune"
    if variant == "adapter":
        return f"adapter-{combination}"
    if num_experts is None:
        raise ValueError(f"variant {variant!r} needs a number of experts")
    if variant == "random-gate":
        return f"random-gate-e{num_experts}"
    if variant == "sbmoe":
        return f"sbmoe-{combination}-e{num_experts}"
    raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def parse_system(system: str) -> dict:
    """Invert :func:`system_name`: ``{"variant", "combination", "num_experts"}``."""
    if system in ("finetune", "zeroshot"):
        return {"variant": system, "combination": None, "num_experts": None}
    parts = system.split("-")
    try:
        if parts[0] == "adapter" and len(parts) == 2 and parts[1] in COMBINATIONS:
            return {"variant": "adapter", "combination": parts[1], "num_experts": 1}
        if system.startswith("random-gate-e") and len(parts) == 3:
            return {"variant": "random-gate", "combination": "paper", "num_experts": int(parts[2][1:])}
        if parts[0] == "sbmoe" and len(parts) == 3 and parts[1] in COMBINATIONS and parts[2][0] == "e":
            return {"variant": "sbmoe", "combination": parts[1], "num_experts": int(parts[2][1:])}
    except ValueError:
        pass
    raise ValueError(f"not a system name: {system!r} (e.g. finetune, adapter-paper, sbmoe-paper-e6, random-gate-e6)")


def poolings(system: str) -> tuple[str, ...]:
    """The inference poolings a system is read with: ``top1`` and ``all`` for SB-MoE, ``top1`` for the
    random gate, ``none`` for a model without a gate."""
    variant = parse_system(system)["variant"]
    if variant == "sbmoe":
        return ("top1", "all")
    if variant == "random-gate":
        return ("top1",)
    return ("none",)


@dataclass
class ModelConfig:
    """A variant of the study, with everything needed to rebuild it."""

    encoder: EncoderConfig
    variant: str = "finetune"
    num_experts: int = 6
    combination: str = "paper"
    seed: int = 42
    encoder_trained: bool = True  # False when training kept the encoder frozen (it is then not saved)

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig(**self.encoder)
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.combination not in COMBINATIONS:
            raise ValueError(f"combination must be one of {COMBINATIONS}, got {self.combination!r}")
        if self.variant == "adapter":
            self.num_experts = 1
        elif self.variant == "finetune":
            self.num_experts = 0
        elif self.num_experts < 2:
            raise ValueError(f"variant {self.variant!r} needs num_experts >= 2, got {self.num_experts}")

    @property
    def has_gate(self) -> bool:
        return self.variant in ("sbmoe", "random-gate")

    @property
    def system(self) -> str:
        """The system's name in file paths and tables, e.g. ``sbmoe-paper-e6``."""
        return system_name(self.variant, self.combination, self.num_experts)

    @property
    def poolings(self) -> tuple[str, ...]:
        return poolings(self.system)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Encoded:
    """Embeddings of a list of texts and how each was routed (``experts`` is -1 without a gate)."""

    embeddings: np.ndarray
    experts: np.ndarray
    gate: np.ndarray
    ids: list[str] = field(default_factory=list)

    def save(self, path: str | os.PathLike) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(
                    handle,
                    ids=np.asarray(self.ids, dtype=str),
                    embeddings=self.embeddings.astype(np.float32),
                    experts=self.experts.astype(np.int64),
                    gate=self.gate.astype(np.float32),
                )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Encoded":
        with np.load(path, allow_pickle=False) as data:
            return cls(
                embeddings=data["embeddings"],
                experts=data["experts"],
                gate=data["gate"],
                ids=[str(i) for i in data["ids"]],
            )

    @classmethod
    def concatenate(cls, parts: list["Encoded"]) -> "Encoded":
        return cls(
            embeddings=np.concatenate([p.embeddings for p in parts]),
            experts=np.concatenate([p.experts for p in parts]),
            gate=np.concatenate([p.gate for p in parts]),
            ids=[i for p in parts for i in p.ids],
        )


class Retriever(nn.Module):
    """A bi-encoder: one shared encoder for queries and documents, then the variant's SB-MoE block."""

    def __init__(self, config: ModelConfig, encoder: Encoder | None = None):
        super().__init__()
        self.config = config
        torch.manual_seed(config.seed)  # the block's initialisation depends on the seed only
        self.encoder = encoder or Encoder(config.encoder)
        hidden = self.encoder.hidden_size
        if config.variant == "finetune":
            self.moe: SBMoE | None = None
        else:
            gate = {"sbmoe": "learned", "random-gate": "random", "adapter": None}[config.variant]
            self.moe = SBMoE(hidden, config.num_experts, config.combination, gate=gate, seed=config.seed)

    def represent(self, pooled: torch.Tensor, pooling: str = "top1") -> tuple[torch.Tensor, Routing | None]:
        """Apply the block (if any) to pooled encoder embeddings."""
        if self.moe is None:
            return pooled, None
        return self.moe(pooled, "top1" if pooling == "none" else pooling)

    def forward(self, texts: list[str], kind: str, pooling: str = "top1"):
        batch = self.encoder.tokenize(texts, kind)
        return self.represent(self.encoder(**batch), pooling)

    def encode(
        self, texts: list[str], kind: str, pooling: str = "top1", batch_size: int = 64, progress: bool = True
    ) -> Encoded:
        """Encode ``texts`` (``kind`` is ``query`` or ``doc``) and route them, in input order."""
        pooled = self.encoder.pool(texts, kind, batch_size=batch_size, progress=progress)
        return self.encode_pooled(pooled, pooling)

    @torch.no_grad()
    def encode_pooled(self, pooled: torch.Tensor, pooling: str = "top1", batch_size: int = 4096) -> Encoded:
        """Apply the block to pooled encoder embeddings, e.g. ones cached for a frozen encoder.

        A random gate restarts its seeded sequence, so the same texts in the same order are
        routed the same way on every pass.
        """
        self.eval()
        if self.moe is not None and isinstance(self.moe.gate, RandomGate):
            self.moe.gate.reseed()
        device = self.encoder.device
        embeddings, experts, gates = [], [], []
        for start in range(0, len(pooled), batch_size):
            out, routing = self.represent(pooled[start : start + batch_size].to(device), pooling)
            embeddings.append(out.float().cpu())
            if routing is not None and self.config.has_gate:
                experts.append(routing.experts.cpu())
                gates.append(routing.weights.float().cpu())
        n = len(pooled)
        return Encoded(
            embeddings=torch.cat(embeddings).numpy() if n else np.zeros((0, self.encoder.hidden_size), np.float32),
            experts=torch.cat(experts).numpy() if experts else np.full(n, -1, dtype=np.int64),
            gate=torch.cat(gates).numpy() if gates else np.zeros((n, 0), dtype=np.float32),
        )

    def save(self, folder: str | os.PathLike) -> None:
        """Write ``config.json``, the block's weights, and the encoder if it was trained; atomically."""
        with atomic_path(folder) as tmp:
            tmp.mkdir()
            config = self.config.to_dict()
            if self.config.encoder_trained:
                self.encoder.save(tmp / "encoder")
                config["encoder"]["name_or_path"] = "encoder"  # relative to the model folder
            (tmp / "config.json").write_text(json.dumps(config, indent=1) + "\n")
            if self.moe is not None:
                torch.save(self.moe.state_dict(), tmp / "moe.pt")

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str | torch.device = "cpu") -> "Retriever":
        folder = Path(folder)
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path}: not a saved model folder (config.json missing)")
        data = json.loads(config_path.read_text())
        if data.get("encoder_trained"):
            data["encoder"]["name_or_path"] = str(folder / data["encoder"]["name_or_path"])
        model = cls(ModelConfig(**data))
        if model.moe is not None:
            model.moe.load_state_dict(torch.load(folder / "moe.pt", map_location="cpu", weights_only=True))
        return model.to(device)
