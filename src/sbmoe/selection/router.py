"""The gate of :mod:`sbmoe.selection.routing`: a small network that reads a query (its embedding from the base
encoder, and optionally cheap query features) and scores each expert retriever.

:func:`train_router` fits it, full-batch and seeded, to pick the expert with the highest utility
(per-query nDCG@10): a cross-entropy towards the best experts (shared when several tie), each query
weighted by how much the choice matters (the gap between its best and worst utility), so queries on
which every expert scores the same teach nothing, plus an L2 penalty on the gate's weights (not its
biases). Held-out splits are small (SciFact's has about 40 queries), so the penalty is chosen by
seeded k-fold cross-validation on the split: the value whose held-out routing has the highest mean
utility, the strongest on ties. A strong penalty leaves the biases alone, a gate that sends every
query to the expert that is best on average. Inputs are standardised with the training queries'
mean and standard deviation, which the router keeps.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from sbmoe.io.atomic import atomic_path
from sbmoe.selection.experts import best_experts, feature_names
from sbmoe.systems.names import BM25, parse_expert

_STD_FLOOR = 1e-6


@dataclass
class RouterConfig:
    """The gate's shape and training: ``hidden`` 0 is a linear gate (multinomial logistic regression)."""

    hidden: int = 0
    epochs: int = 300
    lr: float = 0.01
    l2: list[float] = field(default_factory=lambda: [0.001, 0.01, 0.1, 1.0])
    folds: int = 5
    features: list[str] = field(default_factory=lambda: ["length", "bm25"])
    seed: int = 0

    def __post_init__(self):
        self.l2 = [float(v) for v in (self.l2 if isinstance(self.l2, (list, tuple)) else [self.l2])]
        if self.hidden < 0 or self.epochs < 1 or self.lr <= 0 or self.folds < 2:
            raise ValueError(f"router needs hidden >= 0, epochs >= 1, lr > 0 and folds >= 2, got {self}")
        if not self.l2 or any(v < 0 for v in self.l2):
            raise ValueError(f"router l2 must be one or more non-negative penalties, got {self.l2}")
        self.features = list(self.features)
        feature_names(self.features)


class Router(nn.Module):
    """The gate: standardised inputs (query embedding, then query features) → one logit per expert."""

    def __init__(
        self,
        experts: Sequence[str],
        embedding_size: int,
        config: RouterConfig,
        mean: np.ndarray | None = None,
        std: np.ndarray | None = None,
    ):
        super().__init__()
        if len(experts) < 2:
            raise ValueError(f"routing needs at least two experts, got {list(experts)}")
        for name in experts:
            parse_expert(name)
        if BM25 in config.features and BM25 not in experts:
            raise ValueError("the bm25 query features need bm25 among the experts")
        self.experts = list(experts)
        self.embedding_size = embedding_size
        self.config = config
        size = embedding_size + len(feature_names(config.features))
        self.register_buffer("mean", torch.as_tensor(np.zeros(size) if mean is None else mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(np.ones(size) if std is None else std, dtype=torch.float32))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            if config.hidden:
                self.gate = nn.Sequential(
                    nn.Linear(size, config.hidden), nn.ReLU(), nn.Linear(config.hidden, len(experts))
                )
            else:
                self.gate = nn.Linear(size, len(experts))

    def inputs(self, embeddings: np.ndarray, features: np.ndarray) -> torch.Tensor:
        embeddings, features = np.asarray(embeddings, dtype=np.float32), np.asarray(features, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embedding_size:
            raise ValueError(f"expected query embeddings of size {self.embedding_size}, got shape {embeddings.shape}")
        if features.shape != (len(embeddings), len(self.mean) - self.embedding_size):
            raise ValueError(
                f"expected {len(self.mean) - self.embedding_size} features per query, got {features.shape}"
            )
        return torch.from_numpy(np.concatenate([embeddings, features], axis=1))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.gate((inputs - self.mean) / self.std)

    @torch.no_grad()
    def weights(self, embeddings: np.ndarray, features: np.ndarray) -> np.ndarray:
        """The gate's softmax over the experts, ``(queries, experts)``."""
        self.eval()
        return torch.softmax(self(self.inputs(embeddings, features)), dim=1).numpy().astype(float)

    def choose(self, embeddings: np.ndarray, features: np.ndarray) -> np.ndarray:
        """The index of the expert each query is routed to (the largest weight; the first on ties)."""
        return np.argmax(self.weights(embeddings, features), axis=1)

    def save(self, folder: str | os.PathLike, extra: Mapping | None = None) -> None:
        """``router.pt`` (weights) and ``router.json`` (experts, sizes, settings and ``extra``), atomically."""
        with atomic_path(folder) as tmp:
            tmp.mkdir()
            torch.save(self.state_dict(), tmp / "router.pt")
            description = {
                "experts": self.experts,
                "embedding_size": self.embedding_size,
                "config": asdict(self.config),
                **(extra or {}),
            }
            (tmp / "router.json").write_text(json.dumps(description, indent=1) + "\n")

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Router:
        folder = Path(folder)
        description = read_description(folder)
        router = cls(description["experts"], description["embedding_size"], RouterConfig(**description["config"]))
        router.load_state_dict(torch.load(folder / "router.pt", map_location="cpu", weights_only=True))
        return router.eval()


def read_description(folder: str | os.PathLike) -> dict:
    """A saved router's ``router.json``."""
    path = Path(folder) / "router.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: not a router folder (no router.json)")
    return json.loads(path.read_text())


def _standardisation(inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = inputs.mean(axis=0), inputs.std(axis=0)
    std[std < _STD_FLOOR] = 1.0
    return mean, std


def _fit(
    experts: Sequence[str],
    embedding_size: int,
    inputs: np.ndarray,
    utility: np.ndarray,
    config: RouterConfig,
    l2: float,
    progress: bool = False,
) -> tuple[Router, list[dict]]:
    """One gate fitted on ``inputs`` (embeddings then features) with the penalty ``l2``."""
    router = Router(experts, embedding_size, config, *_standardisation(inputs))
    x = torch.from_numpy(inputs)
    target = torch.as_tensor(best_experts(utility), dtype=torch.float32)
    regret = utility.max(axis=1) - utility.min(axis=1)
    share = regret / regret.sum()
    weight = torch.as_tensor(share, dtype=torch.float32)
    best = best_experts(utility) > 0
    penalised = [p for name, p in router.gate.named_parameters() if name.endswith("weight")]
    optimiser = torch.optim.Adam(router.gate.parameters(), lr=config.lr)
    log = []
    router.train()
    for epoch in tqdm(range(1, config.epochs + 1), desc="router", unit="epoch", disable=not progress):
        optimiser.zero_grad()
        logits = router(x)
        loss = -(weight * (target * torch.log_softmax(logits, dim=1)).sum(dim=1)).sum()
        penalty = l2 * sum((p**2).sum() for p in penalised)
        (loss + penalty).backward()
        optimiser.step()
        chosen = logits.detach().argmax(dim=1).numpy()
        hit = best[np.arange(len(chosen)), chosen]
        log.append(
            {
                "epoch": epoch,
                "loss": float(loss.detach()),
                "penalty": float(penalty.detach()),
                "accuracy": round(float(share[hit].sum()), 12),
            }
        )
    return router.eval(), log


def cross_validate(
    experts: Sequence[str],
    embedding_size: int,
    inputs: np.ndarray,
    utility: np.ndarray,
    config: RouterConfig,
    progress: bool = True,
) -> dict[float, float]:
    """Mean held-out utility of hard routing for each penalty of ``config.l2``, over seeded folds
    (as many as there are queries when there are fewer than ``config.folds``)."""
    folds = min(config.folds, len(inputs))
    assignment = np.random.default_rng(config.seed).permutation(len(inputs)) % folds
    scores = {}
    for l2 in tqdm(config.l2, desc="router l2", unit="penalty", disable=not progress):
        routed = np.zeros(len(inputs))
        for fold in range(folds):
            held = assignment == fold
            train = ~held
            if not (utility[train].max(axis=1) > utility[train].min(axis=1)).any():
                routed[held] = utility[held].mean(axis=1)  # nothing to learn from: no better than chance
                continue
            router, _ = _fit(experts, embedding_size, inputs[train], utility[train], config, l2)
            chosen = router.choose(inputs[held, :embedding_size], inputs[held, embedding_size:])
            routed[held] = utility[held][np.arange(held.sum()), chosen]
        scores[l2] = float(routed.mean())
    return scores


def train_router(
    experts: Sequence[str],
    embeddings: np.ndarray,
    features: np.ndarray,
    utility: np.ndarray,
    config: RouterConfig | None = None,
    progress: bool = True,
) -> tuple[Router, dict]:
    """Fit a gate that picks the expert with the highest utility. Returns it and its log:
    ``cross_validation`` (``{l2: mean held-out utility}``, with several penalties), ``l2`` (the one
    kept) and ``epochs`` (per epoch of the final fit: ``loss``, ``penalty``, ``accuracy`` = share of
    the weighted training queries routed to a best expert). ``config`` defaults to :class:`RouterConfig`'s
    defaults (a fresh one per call: its lists are not shared between calls)."""
    config = RouterConfig() if config is None else config
    embeddings, features = np.asarray(embeddings, dtype=np.float32), np.asarray(features, dtype=np.float32)
    utility = np.asarray(utility, dtype=float)
    if utility.shape != (len(embeddings), len(experts)):
        raise ValueError(f"utility must be (queries, experts) = {(len(embeddings), len(experts))}, got {utility.shape}")
    if not (utility.max(axis=1) > utility.min(axis=1)).any():
        raise ValueError(f"no training query tells the experts apart (all {len(utility)} score the same with each)")
    inputs = np.concatenate([embeddings, features], axis=1)
    scores = {}
    if len(config.l2) > 1 and len(inputs) > 1:
        scores = cross_validate(experts, embeddings.shape[1], inputs, utility, config, progress)
        l2 = max(sorted(scores, reverse=True), key=lambda value: scores[value])  # the strongest on ties
    else:
        l2 = max(config.l2)
    router, epochs = _fit(experts, embeddings.shape[1], inputs, utility, config, l2, progress)
    return router, {"cross_validation": {str(k): v for k, v in scores.items()}, "l2": l2, "epochs": epochs}
