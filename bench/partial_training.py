"""Benchmark: what partial fine-tuning over a cached prefix costs on this machine's CPU, against the
full forward pass (all-MiniLM-L6-v2, SciFact).

Measures (median seconds over ``--steps`` after one warm-up step) a training step of 64 queries and
their 64 positive documents: every layer trained (the full forward and backward pass), and the top N
layers trained over cached prefix states for each N of ``--layers`` (also for the Regular MoE); the
one-off cost of caching the prefix; and encoding ``--docs`` corpus documents with a trained model
from the cache against the full forward pass. Prints each time and its ratio to the named peer.

    nice python bench/partial_training.py --steps 3 --layers 1 2 --docs 256
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import torch

from sbmoe.io.collection import Collection, document_text
from sbmoe.models.encoder import EMBEDDED_MODEL, EncoderConfig
from sbmoe.models.prefix import compute_prefix, pad
from sbmoe.models.regular_moe import RoutingLog
from sbmoe.models.retriever import ModelConfig, Retriever
from sbmoe.training.config import TrainConfig
from sbmoe.training.examples import info_nce
from sbmoe.training.trainer import encoder_groups


def _batch(collection: Collection, size: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    qids = rng.sample(sorted(collection.qrels), size)
    docs = [sorted(d for d, grade in collection.qrels[q].items() if grade > 0)[0] for q in qids]
    return [collection.queries[q] for q in qids], [document_text(collection.corpus[d]) for d in docs]


def _model(variant: str, max_length: int) -> Retriever:
    encoder = EncoderConfig(EMBEDDED_MODEL, normalize=True, query_max_length=max_length, doc_max_length=max_length)
    extra = {"num_experts": 4, "top_k": 2, "moe_layers": [-1]} if variant == "regular-moe" else {}
    return Retriever(ModelConfig(encoder, variant=variant, **extra))


def _median_step(step, steps: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def training_step(
    model: Retriever, queries: list[str], docs: list[str], train_layers, steps: int
) -> tuple[float, float]:
    """(seconds to cache the prefix of the batch's texts, median seconds per training step)."""
    config = TrainConfig(train_layers=train_layers, encoder_lr=2e-5, moe_lr=1e-4, temperature=0.05)
    encoder = model.encoder
    depth = None if train_layers == "all" else encoder.num_layers - train_layers
    optimizer = torch.optim.AdamW(encoder_groups(model, config, depth), weight_decay=0.01)
    routing = RoutingLog(encoder)
    caching = 0.0
    if depth is None:
        batches = {kind: encoder.tokenize(texts, kind) for kind, texts in (("query", queries), ("doc", docs))}

        def pooled(kind):
            return encoder(**batches[kind])
    else:
        started = time.perf_counter()
        caches = {
            kind: compute_prefix(encoder, [str(i) for i in range(len(texts))], texts, kind, depth, progress=False)
            for kind, texts in (("query", queries), ("doc", docs))
        }
        caching = time.perf_counter() - started

        def pooled(kind):
            hidden, mask = pad(caches[kind].states(range(len(caches[kind]))))
            return encoder.top(hidden, mask, depth)

    def step():
        model.train()
        if depth is not None:
            encoder.model.eval()
            encoder.layers[depth:].train()
        q, _ = model.represent(pooled("query"))
        q_balance = routing.balance_loss() if routing else 0.0
        d, _ = model.represent(pooled("doc"))
        d_balance = routing.balance_loss() if routing else 0.0
        loss = info_nce(q, d, config.temperature) + config.router_balance_coef * (q_balance + d_balance) / 2
        model.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return caching, _median_step(step, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--docs", type=int, default=256, help="corpus documents encoded for the encoding comparison")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    collection = Collection.load(args.dataset, "train")
    queries, docs = _batch(collection, args.batch_size, seed=0)
    print(
        f"all-MiniLM-L6-v2, {args.batch_size} queries + {args.batch_size} documents per step, max length "
        f"{args.max_length}, {args.threads} threads, median of {args.steps} steps"
    )

    _, full = training_step(_model("finetune", args.max_length), queries, docs, "all", args.steps)
    print(f"train step, every layer (full forward + backward):  {full:7.2f} s  (peer)")
    for layers in args.layers:
        for variant in ("finetune", "regular-moe"):
            caching, seconds = training_step(_model(variant, args.max_length), queries, docs, layers, args.steps)
            print(
                f"train step, top {layers} layer(s) over the cache, {variant:11s} {seconds:7.2f} s  "
                f"= {seconds / full:.3f} x the full step  "
                f"(caching these {2 * args.batch_size} texts once: {caching:.2f} s)"
            )

    ids = sorted(collection.corpus)[: args.docs]
    texts = [document_text(collection.corpus[d]) for d in ids]
    model = _model("finetune", args.max_length)
    model.config.encoder_trained = False
    started = time.perf_counter()
    model.encoder.pool(texts, "doc", batch_size=64, progress=False)
    forward = time.perf_counter() - started
    print(f"encode {len(texts)} documents, full forward pass:      {forward:7.2f} s  (peer)")
    for layers in args.layers:
        depth = model.encoder.num_layers - layers
        started = time.perf_counter()
        cache = compute_prefix(model.encoder, ids, texts, "doc", depth, batch_size=64, progress=False)
        caching = time.perf_counter() - started
        started = time.perf_counter()
        model.pool_prefix(cache, batch_size=64, progress=False)
        seconds = time.perf_counter() - started
        print(
            f"encode {len(texts)} documents, top {layers} layer(s) from the cache: {seconds:7.2f} s  "
            f"= {seconds / forward:.3f} x the full forward  (caching them once: {caching:.2f} s, "
            f"{cache.tokens.nbytes / len(texts) / 1024:.0f} KiB per document)"
        )


if __name__ == "__main__":
    main()
