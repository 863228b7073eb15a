"""Contrastive training of a :class:`~sbmoe.models.retriever.Retriever` with in-batch negatives.

Each epoch samples one positive document per training query from its qrels, shuffles the
queries into batches and minimises InfoNCE over the batch (query embeddings divided by a
temperature). AdamW updates the encoder and the SB-MoE block with separate learning rates.
The checkpoint with the best validation loss is kept; training stops early after ``patience``
epochs without improvement. One JSON line per epoch records the losses and the routing:
the gate's gradient norm, the entropy of the expert load and the share of texts per expert.

``train_layers`` chooses what of the encoder is trained. ``"all"`` trains every weight (the paper).
``0`` freezes it: the encoder is neither updated nor run in training mode (no dropout), and
``cache_frozen`` encodes every needed text once and trains the block on the cached pooled embeddings.
``N`` trains the top N Transformer layers (and the block): the layers below keep their pretrained
weights and run in eval mode, and ``cache_frozen`` runs them once per text and trains the top layers
on their cached hidden states (:mod:`sbmoe.models.prefix`); dropout is active in the trained layers only.
Either cache gives the same result as running the frozen part on every batch.

A Regular MoE (:mod:`sbmoe.models.regular_moe`) adds its load-balancing loss, weighted by
``router_balance_coef``, and logs each MoE layer's routing per epoch (``layer_routing``).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from sbmoe.io.collection import Corpus, Qrels, Queries, document_text, split_validation
from sbmoe.models.retriever import Retriever
from sbmoe.models.moe import Gate, load_balancing_loss, routing_entropy
from sbmoe.models.prefix import PrefixCache, check_fits, compute_prefix, pad, prefix_depth
from sbmoe.models.regular_moe import MoEFeedForward, RoutingLog, replaced_parameters


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
            raise ValueError(f"training train_layers must be 'all' or a number of layers >= 0, got {self.train_layers!r}")
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


def info_nce(queries: torch.Tensor, docs: torch.Tensor, temperature: float, doc_ids: list[str] | None = None) -> torch.Tensor:
    """In-batch-negative InfoNCE: query ``i``'s positive is document ``i``, the others are negatives.

    Scores are dot products of ``queries / temperature`` with ``docs``. When ``doc_ids`` is given, a
    batch document that is another query's copy of the same positive is not counted as a negative.
    """
    scores = (queries / temperature) @ docs.T
    if doc_ids is not None:
        same = torch.tensor([[a == b for b in doc_ids] for a in doc_ids], device=scores.device)
        same.fill_diagonal_(False)
        scores = scores.masked_fill(same, float("-inf"))
    return F.cross_entropy(scores, torch.arange(len(queries), device=scores.device))


@dataclass
class Example:
    qid: str
    doc_id: str


def sample_positives(qrels: Qrels, rng: random.Random) -> list[Example]:
    """One positive document per query, drawn from its judgements with a grade above zero."""
    examples = []
    for qid in sorted(qrels):
        positives = sorted(d for d, grade in qrels[qid].items() if grade > 0)
        if positives:
            examples.append(Example(qid, rng.choice(positives)))
    return examples


@dataclass
class TrainResult:
    log: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf


Pooled = dict[str, tuple[list[str], torch.Tensor]]  # kind ("query"/"doc") -> (ids, pooled embeddings)
Prefix = dict[str, PrefixCache]  # kind ("query"/"doc") -> cached prefix states


class _Texts:
    """Pooled embeddings of training texts: from a pooled cache (frozen encoder), from the trained top
    layers over cached prefix states, or from the encoder on every batch.

    ``depth`` is the first trained layer (None when every layer is trained); the cache it calls for
    is built here unless ``pooled`` or ``prefix`` supplies it.
    """

    def __init__(self, model: Retriever, queries: Queries, corpus: Corpus, qrels: Qrels, config: TrainConfig,
                 depth: int | None, pooled: Pooled | None = None, prefix: Prefix | None = None):
        self.model, self.queries, self.corpus, self.config, self.depth = model, queries, corpus, config, depth
        self.cache: dict[str, tuple[dict[str, int], torch.Tensor]] | None = None
        self.prefix: Prefix | None = None
        if pooled is not None and not config.frozen:
            raise ValueError("cached pooled embeddings need training.train_layers: 0 (a frozen encoder)")
        if prefix is not None and (config.frozen or depth is None):
            raise ValueError(f"cached prefix states need training.train_layers >= 1 and below the encoder's "
                             f"number of layers, got {config.train_layers!r}")
        qids = sorted(qrels)
        doc_ids = sorted({d for docs in qrels.values() for d, grade in docs.items() if grade > 0})
        if config.frozen and config.cache_frozen and pooled is None:
            encoder = model._require_encoder()
            pooled = {
                "query": (qids, encoder.pool([queries[q] for q in qids], "query", config.encode_batch_size)),
                "doc": (doc_ids, encoder.pool([document_text(corpus[d]) for d in doc_ids], "doc", config.encode_batch_size)),
            }
        if pooled is not None:
            self.cache = {kind: ({i: row for row, i in enumerate(ids)}, matrix) for kind, (ids, matrix) in pooled.items()}
        if depth is not None and not config.frozen and config.cache_frozen and prefix is None:
            encoder = model._require_encoder()
            prefix = {
                "query": PrefixCache([compute_prefix(encoder, qids, [queries[q] for q in qids], "query", depth,
                                                     batch_size=config.encode_batch_size)]),
                "doc": PrefixCache([compute_prefix(encoder, doc_ids, [document_text(corpus[d]) for d in doc_ids], "doc",
                                                   depth, batch_size=config.encode_batch_size)]),
            }
        if prefix is not None:
            for kind, cache in prefix.items():
                if cache.depth != depth:
                    raise ValueError(f"cached {kind} prefix states enter layer {cache.depth}, but training.train_layers: "
                                     f"{config.train_layers} trains the layers from {depth} up")
                check_fits(model._require_encoder(), cache.depth, kind, cache.max_length, f"cached {kind} prefix states")
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
                hidden = encoder.prefix(batch["input_ids"], batch["attention_mask"], self.depth, batch.get("token_type_ids"))
            return encoder.top(hidden, batch["attention_mask"], self.depth)
        return encoder(**batch)


def _gate_grad_norm(model: Retriever) -> float | None:
    gate = model.moe.gate if model.moe is not None else None
    if not isinstance(gate, Gate):
        return None
    squares = [p.grad.pow(2).sum() for p in gate.parameters() if p.grad is not None]
    return float(torch.stack(squares).sum().sqrt()) if squares else 0.0


def _snapshot(model: Retriever, config: TrainConfig) -> dict[str, torch.Tensor]:
    """A copy of the trained weights (the block alone when the encoder is frozen)."""
    module = model.moe if config.frozen else model
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _batches(examples: list[Example], size: int) -> list[list[Example]]:
    batches = [examples[i : i + size] for i in range(0, len(examples), size)]
    return [b for b in batches if len(b) > 1]  # one example has no in-batch negative


def encoder_groups(model: Retriever, config: TrainConfig, depth: int | None) -> list[dict]:
    """The optimizer's groups for the encoder: the trained layers (from the embeddings up when
    ``depth`` is None) and a Regular MoE's experts at ``encoder_lr``, its routers at ``moe_lr``.
    Everything else in the encoder is frozen (``requires_grad`` off)."""
    encoder = model.encoder
    if config.frozen:
        if encoder is not None:
            encoder.requires_grad_(False)
        return []
    encoder = model._require_encoder()
    moe_layers = sorted(int(index) for index in encoder.feed_forward)
    if moe_layers and depth is not None and moe_layers[0] < depth:
        raise ValueError(f"training.train_layers: {config.train_layers} trains the layers from {depth} up, but the "
                         f"Regular MoE replaces layer {moe_layers[0]}: its MoE layers must be among the trained layers")
    trained = encoder.model if depth is None else encoder.layers[depth:]
    encoder.requires_grad_(False)
    trained.requires_grad_(True)
    encoder.feed_forward.requires_grad_(True)
    replaced = replaced_parameters(encoder)
    for p in replaced:
        p.requires_grad_(False)
    skip = {id(p) for p in replaced}
    moe = [m for m in encoder.feed_forward.values() if isinstance(m, MoEFeedForward)]
    weights = [p for p in trained.parameters() if id(p) not in skip] + [p for m in moe for p in m.experts.parameters()]
    groups = [{"params": weights, "lr": config.encoder_lr}]
    routers = [p for m in moe for p in m.router.parameters()]
    if routers:
        groups.append({"params": routers, "lr": config.moe_lr})
    return groups


def train(
    model: Retriever,
    corpus: Corpus,
    queries: Queries,
    qrels: Qrels,
    config: TrainConfig,
    valid_qrels: Qrels | None = None,
    log_path: str | os.PathLike | None = None,
    progress: bool = True,
    pooled: Pooled | None = None,
    prefix: Prefix | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``qrels`` and leave it at its best validation checkpoint.

    The validation queries are ``valid_qrels`` if given (and removed from the training queries),
    else ``config.valid_fraction`` of the queries drawn with ``config.seed``. ``pooled`` (frozen
    encoder) and ``prefix`` (``train_layers`` N) supply the caches, which are otherwise built here.
    """
    set_seed(config.seed)
    if not any(grade > 0 for docs in qrels.values() for grade in docs.values()):
        raise ValueError(f"the training qrels judge no document relevant: every grade of their {len(qrels)} queries "
                         "is 0 or below, and training needs a positive (grade >= 1) per query")
    if valid_qrels is None:
        train_qrels, valid_qrels = split_validation(qrels, config.valid_fraction, config.seed)
    else:
        train_qrels = {q: docs for q, docs in qrels.items() if q not in valid_qrels}
    if not train_qrels or not valid_qrels:
        raise ValueError("training needs at least one training and one validation query")
    if pooled is not None and not config.frozen:  # before a block-only model asks for its encoder
        raise ValueError("cached pooled embeddings need training.train_layers: 0 (a frozen encoder)")

    encoder = model.encoder
    depth = None if config.frozen else prefix_depth(config.train_layers, model._require_encoder().num_layers)
    groups = encoder_groups(model, config, depth)
    if model.moe is not None:
        block = [p for p in model.moe.parameters() if p.requires_grad]
        if model.config.combination == "paper" and isinstance(model.moe.gate, Gate):
            # The paper's combination gives the gate a zero gradient (METHOD.md §2; the balance loss is the
            # learned combination's only), but only up to rounding (~1e-7): AdamW would turn that residue
            # into steps of the full learning rate and decay the weights, so the gate stays out of the
            # optimizer and routing stays at its initialisation.
            gate = {id(p) for p in model.moe.gate.parameters()}
            block = [p for p in block if id(p) not in gate]
        groups.append({"params": block, "lr": config.moe_lr})
    trainable = [p for g in groups for p in g["params"]]
    model.config.encoder_trained = not config.frozen
    model.config.frozen_layers = depth or 0

    result = TrainResult()
    log_file = open(log_path, "w") if log_path else None  # noqa: SIM115 (closed below)
    try:
        if not trainable:
            # a frozen encoder with no block: nothing to learn, the model is the zero-shot encoder
            result.log.append({"epoch": 0, "loss": None, "val_loss": None, "gate_grad_norm": None,
                               "routing_entropy": None, "expert_load": None, "layer_routing": None,
                               "seconds": 0.0, "best": True})
            if log_file:
                log_file.write(json.dumps(result.log[-1]) + "\n")
            return result
        optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
        valid_examples = sample_positives(valid_qrels, random.Random(config.seed))
        if len(valid_examples) < 2:  # one query has no in-batch negative
            raise ValueError(f"the validation split needs at least two queries with a positive document, got "
                             f"{len(valid_examples)} of its {len(valid_qrels)} queries (see training.valid_fraction "
                             "or the qrels/valid.tsv file)")
        texts = _Texts(model, queries, corpus, {**train_qrels, **valid_qrels}, config, depth, pooled, prefix)
        device_type = model.device.type
        best_state = None
        stale = 0
        for epoch in tqdm(range(1, config.epochs + 1), desc="epochs", disable=not progress):
            started = time.perf_counter()
            rng = random.Random(config.seed * 1000 + epoch)
            examples = sample_positives(train_qrels, rng)
            rng.shuffle(examples)
            model.train()
            if config.frozen and encoder is not None:
                encoder.eval()
            elif depth is not None:  # dropout in the trained layers only
                encoder.model.eval()
                encoder.layers[depth:].train()
            losses, grad_norms = [], []
            load = torch.zeros(max(model.config.num_experts, 1))
            layer_routing = RoutingLog(encoder) if encoder is not None and not config.frozen else None
            batches = _batches(examples, config.batch_size)
            for batch in tqdm(batches, desc=f"epoch {epoch} batches", unit="batch", leave=False, disable=not progress):
                with torch.autocast(device_type, dtype=torch.bfloat16, enabled=config.mixed_precision):
                    q, q_routing = model.represent(texts.pooled([e.qid for e in batch], "query"))
                    q_balance = layer_routing.balance_loss() if layer_routing else None
                    d, d_routing = model.represent(texts.pooled([e.doc_id for e in batch], "doc"))
                    d_balance = layer_routing.balance_loss() if layer_routing else None
                    loss = info_nce(q.float(), d.float(), config.temperature, [e.doc_id for e in batch])
                    if config.balance_coef > 0 and model.config.combination == "learned" and q_routing is not None and q_routing.probs is not None:
                        loss = loss + config.balance_coef * (load_balancing_loss(q_routing) + load_balancing_loss(d_routing)) / 2
                    if layer_routing and config.router_balance_coef > 0:
                        loss = loss + config.router_balance_coef * (q_balance + d_balance) / 2
                model.zero_grad(set_to_none=True)  # also the gradients of a gate left out of the optimizer
                loss.backward()
                norm = _gate_grad_norm(model)
                if norm is not None:
                    grad_norms.append(norm)
                optimizer.step()
                losses.append(loss.item())
                if q_routing is not None and model.config.has_gate:
                    for routing in (q_routing, d_routing):
                        load += torch.bincount(routing.experts.cpu(), minlength=len(load)).float()
            val_loss = _validation_loss(model, texts, valid_examples, config)
            share = (load / load.sum()) if load.sum() > 0 else None
            entry = {
                "epoch": epoch,
                "loss": float(np.mean(losses)) if losses else math.nan,
                "val_loss": val_loss,
                "gate_grad_norm": float(np.mean(grad_norms)) if grad_norms else None,
                "routing_entropy": routing_entropy(share) if share is not None else None,
                "expert_load": share.tolist() if share is not None else None,
                "layer_routing": layer_routing.summary() if layer_routing else None,
                "seconds": time.perf_counter() - started,
                "best": val_loss < result.best_val_loss,
            }
            if entry["best"]:
                result.best_val_loss, result.best_epoch, stale = val_loss, epoch, 0
                best_state = _snapshot(model, config)
            else:
                stale += 1
            result.log.append(entry)
            if log_file:
                log_file.write(json.dumps(entry) + "\n")
                log_file.flush()
            if config.patience and stale >= config.patience:
                break
        if best_state is not None:
            (model.moe if config.frozen else model).load_state_dict(best_state)
        return result
    finally:
        if log_file:
            log_file.close()


@torch.no_grad()
def _validation_loss(model: Retriever, texts: _Texts, examples: list[Example], config: TrainConfig) -> float:
    """Mean InfoNCE over the validation queries in fixed batches, the model in eval mode (TOP-1)."""
    model.eval()
    losses, sizes = [], []
    for batch in _batches(examples, config.batch_size):
        q, _ = model.represent(texts.pooled([e.qid for e in batch], "query"))
        d, _ = model.represent(texts.pooled([e.doc_id for e in batch], "doc"))
        losses.append(float(info_nce(q.float(), d.float(), config.temperature, [e.doc_id for e in batch])))
        sizes.append(len(batch))
    return float(np.average(losses, weights=sizes))
