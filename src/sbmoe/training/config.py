"""Training settings (:class:`TrainConfig`, the authors' defaults) and seeding."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass
class TrainConfig:
    """Training settings; defaults are the authors' (METHOD.md §3)."""

    epochs: int = 20
    batch_size: int = 64
    encoder_lr: float = 1e-6
    moe_lr: float = 1e-4
    weight_decay: float = 0.01
    temperature: float = 1.0
    valid_fraction: float = 0.05
    patience: int = 0  # epochs without validation improvement before stopping; 0 never stops early
    train_layers: int | str = "all"  # top Transformer layers trained: "all" (and the embeddings), N, or 0 (frozen)
    cache_frozen: bool = True  # run the frozen part once per text and train on its cached output
    balance_coef: float = 0.0  # weight of the load-balancing loss (the learned combination only)
    router_balance_coef: float = 0.01  # weight of the Regular MoE's load-balancing loss
    mixed_precision: bool = False
    seed: int = 42
    encode_batch_size: int = 128

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"training epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 2:  # in-batch negatives: a query's negatives are the batch's other documents
            raise ValueError(f"training batch_size must be at least 2 (in-batch negatives), got {self.batch_size}")
        if self.encode_batch_size < 1:
            raise ValueError(f"training encode_batch_size must be at least 1, got {self.encode_batch_size}")
        for key in ("encoder_lr", "moe_lr", "temperature"):
            if not getattr(self, key) > 0:
                raise ValueError(f"training {key} must be positive, got {getattr(self, key)}")
        if self.train_layers != "all" and (
            isinstance(self.train_layers, bool) or not isinstance(self.train_layers, int) or self.train_layers < 0
        ):
            raise ValueError(
                f"training train_layers must be 'all' or a number of layers >= 0, got {self.train_layers!r}"
            )
        for key in ("weight_decay", "balance_coef", "router_balance_coef", "patience"):
            if getattr(self, key) < 0:
                raise ValueError(f"training {key} must not be negative, got {getattr(self, key)}")
        if not 0 < self.valid_fraction < 1:
            raise ValueError(f"training valid_fraction must be in (0, 1), got {self.valid_fraction}")

    @property
    def frozen(self) -> bool:
        """Whether the encoder is frozen (``train_layers: 0``): only a block is trained."""
        return self.train_layers == 0

    def to_dict(self) -> dict:
        return asdict(self)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
