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
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from sbmoe.io.collection import Corpus, Qrels, Queries, split_validation
from sbmoe.models.moe import Gate, load_balancing_loss, routing_entropy
from sbmoe.models.prefix import prefix_depth
from sbmoe.models.regular_moe import MoEFeedForward, RoutingLog, replaced_parameters
from sbmoe.models.retriever import Retriever
from sbmoe.training.config import TrainConfig, set_seed
from sbmoe.training.examples import Example, batches, info_nce, sample_positives
from sbmoe.training.texts import Pooled, Prefix, TrainingTexts


@dataclass
class TrainResult:
    log: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf


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
        raise ValueError(
            f"training.train_layers: {config.train_layers} trains the layers from {depth} up, but the "
            f"Regular MoE replaces layer {moe_layers[0]}: its MoE layers must be among the trained layers"
        )
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
    train_qrels, valid_qrels = _training_split(qrels, config, valid_qrels)
    if pooled is not None and not config.frozen:  # before a block-only model asks for its encoder
        raise ValueError("cached pooled embeddings need training.train_layers: 0 (a frozen encoder)")
    depth = None if config.frozen else prefix_depth(config.train_layers, model._require_encoder().num_layers)
    groups = _parameter_groups(model, config, depth)
    model.config.encoder_trained = not config.frozen
    model.config.frozen_layers = depth or 0

    result = TrainResult()
    log_file = open(log_path, "w") if log_path else None  # noqa: SIM115 (closed below)
    try:
        if not any(g["params"] for g in groups):
            # a frozen encoder with no block: nothing to learn, the model is the zero-shot encoder
            _record(
                result,
                log_file,
                {
                    "epoch": 0,
                    "loss": None,
                    "val_loss": None,
                    "gate_grad_norm": None,
                    "routing_entropy": None,
                    "expert_load": None,
                    "layer_routing": None,
                    "seconds": 0.0,
                    "best": True,
                },
            )
            return result
        optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
        valid_examples = _validation_examples(valid_qrels, config)
        texts = TrainingTexts(model, queries, corpus, {**train_qrels, **valid_qrels}, config, depth, pooled, prefix)
        best_state, stale = None, 0
        for epoch in tqdm(range(1, config.epochs + 1), desc="epochs", disable=not progress):
            started = time.perf_counter()
            entry = _train_epoch(model, texts, optimizer, train_qrels, config, epoch, depth, progress)
            val_loss = _validation_loss(model, texts, valid_examples, config)
            entry = _with_validation(entry, val_loss, result, time.perf_counter() - started)
            if entry["best"]:
                result.best_val_loss, result.best_epoch, stale = entry["val_loss"], epoch, 0
                best_state = _snapshot(model, config)
            else:
                stale += 1
            _record(result, log_file, entry)
            if config.patience and stale >= config.patience:
                break
        if best_state is not None:
            (model.moe if config.frozen else model).load_state_dict(best_state)
        return result
    finally:
        if log_file:
            log_file.close()


def _training_split(qrels: Qrels, config: TrainConfig, valid_qrels: Qrels | None) -> tuple[Qrels, Qrels]:
    """The training and validation queries (see :func:`train`), refusing qrels that train nothing."""
    if not any(grade > 0 for docs in qrels.values() for grade in docs.values()):
        raise ValueError(
            f"the training qrels judge no document relevant: every grade of their {len(qrels)} queries "
            "is 0 or below, and training needs a positive (grade >= 1) per query"
        )
    if valid_qrels is None:
        train_qrels, valid_qrels = split_validation(qrels, config.valid_fraction, config.seed)
    else:
        train_qrels = {q: docs for q, docs in qrels.items() if q not in valid_qrels}
    if not train_qrels or not valid_qrels:
        raise ValueError("training needs at least one training and one validation query")
    return train_qrels, valid_qrels


def _parameter_groups(model: Retriever, config: TrainConfig, depth: int | None) -> list[dict]:
    """The optimizer's groups: the encoder's (:func:`encoder_groups`) and the block's at ``moe_lr``."""
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
    return groups


def _validation_examples(valid_qrels: Qrels, config: TrainConfig) -> list[Example]:
    examples = sample_positives(valid_qrels, random.Random(config.seed))
    if len(examples) < 2:  # one query has no in-batch negative
        raise ValueError(
            f"the validation split needs at least two queries with a positive document, got "
            f"{len(examples)} of its {len(valid_qrels)} queries (see training.valid_fraction "
            "or the qrels/valid.tsv file)"
        )
    return examples


def _train_mode(model: Retriever, config: TrainConfig, depth: int | None) -> None:
    """Training mode for what is trained: a frozen encoder runs in eval mode (no dropout), and with
    ``train_layers`` N only the top N layers run in training mode."""
    model.train()
    if config.frozen and model.encoder is not None:
        model.encoder.eval()
    elif depth is not None:
        model.encoder.model.eval()
        model.encoder.layers[depth:].train()


def _batch_loss(
    model: Retriever, texts: TrainingTexts, batch: list[Example], config: TrainConfig, layer_routing: RoutingLog | None
):
    """InfoNCE of one batch plus the load-balancing losses that apply; also the query and document routing."""
    q, q_routing = model.represent(texts.pooled([e.qid for e in batch], "query"))
    q_balance = layer_routing.balance_loss() if layer_routing else None
    d, d_routing = model.represent(texts.pooled([e.doc_id for e in batch], "doc"))
    d_balance = layer_routing.balance_loss() if layer_routing else None
    loss = info_nce(q.float(), d.float(), config.temperature, [e.doc_id for e in batch])
    learned = model.config.combination == "learned" and q_routing is not None and q_routing.probs is not None
    if config.balance_coef > 0 and learned:
        loss = loss + config.balance_coef * (load_balancing_loss(q_routing) + load_balancing_loss(d_routing)) / 2
    if layer_routing and config.router_balance_coef > 0:
        loss = loss + config.router_balance_coef * (q_balance + d_balance) / 2
    return loss, (q_routing, d_routing)


def _train_epoch(
    model: Retriever,
    texts: TrainingTexts,
    optimizer: torch.optim.Optimizer,
    train_qrels: Qrels,
    config: TrainConfig,
    epoch: int,
    depth: int | None,
    progress: bool,
) -> dict:
    """One pass over freshly sampled, shuffled training examples; the epoch's log entry without validation."""
    rng = random.Random(config.seed * 1000 + epoch)
    examples = sample_positives(train_qrels, rng)
    rng.shuffle(examples)
    _train_mode(model, config, depth)
    losses, grad_norms = [], []
    load = torch.zeros(max(model.config.num_experts, 1))
    encoder = model.encoder
    layer_routing = RoutingLog(encoder) if encoder is not None and not config.frozen else None
    for batch in tqdm(
        batches(examples, config.batch_size),
        desc=f"epoch {epoch} batches",
        unit="batch",
        leave=False,
        disable=not progress,
    ):
        with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=config.mixed_precision):
            loss, routings = _batch_loss(model, texts, batch, config, layer_routing)
        model.zero_grad(set_to_none=True)  # also the gradients of a gate left out of the optimizer
        loss.backward()
        norm = _gate_grad_norm(model)
        if norm is not None:
            grad_norms.append(norm)
        optimizer.step()
        losses.append(loss.item())
        if routings[0] is not None and model.config.has_gate:
            for routing in routings:
                load += torch.bincount(routing.experts.cpu(), minlength=len(load)).float()
    share = (load / load.sum()) if load.sum() > 0 else None
    return {
        "epoch": epoch,
        "loss": float(np.mean(losses)) if losses else math.nan,
        "gate_grad_norm": float(np.mean(grad_norms)) if grad_norms else None,
        "routing_entropy": routing_entropy(share) if share is not None else None,
        "expert_load": share.tolist() if share is not None else None,
        "layer_routing": layer_routing.summary() if layer_routing else None,
    }


def _with_validation(entry: dict, val_loss: float, result: TrainResult, seconds: float) -> dict:
    """The epoch's log entry in the log's key order, with its validation loss, its time (training and
    validation) and whether it is the best."""
    keys = ("epoch", "loss", "val_loss", "gate_grad_norm", "routing_entropy", "expert_load", "layer_routing", "seconds")
    full = {**entry, "val_loss": val_loss, "seconds": seconds}
    return {**{key: full[key] for key in keys}, "best": val_loss < result.best_val_loss}


def _record(result: TrainResult, log_file, entry: dict) -> None:
    result.log.append(entry)
    if log_file:
        log_file.write(json.dumps(entry) + "\n")
        log_file.flush()


@torch.no_grad()
def _validation_loss(model: Retriever, texts: TrainingTexts, examples: list[Example], config: TrainConfig) -> float:
    """Mean InfoNCE over the validation queries in fixed batches, the model in eval mode (TOP-1)."""
    model.eval()
    losses, sizes = [], []
    for batch in batches(examples, config.batch_size):
        q, _ = model.represent(texts.pooled([e.qid for e in batch], "query"))
        d, _ = model.represent(texts.pooled([e.doc_id for e in batch], "doc"))
        losses.append(float(info_nce(q.float(), d.float(), config.temperature, [e.doc_id for e in batch])))
        sizes.append(len(batch))
    return float(np.average(losses, weights=sizes))
