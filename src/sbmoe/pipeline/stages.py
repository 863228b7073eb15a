"""The study's stages as functions of paths: train, encode, search, evaluate.

The command line (:mod:`sbmoe.pipeline.cli`) and the Snakemake scripts both call these; each stage reads
its inputs, calls the library and writes its outputs atomically, so an interrupted stage leaves
nothing half-written.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from sbmoe.evaluation.metrics import METRICS, evaluate, metric_problem
from sbmoe.io.atomic import atomic_path, write_json
from sbmoe.io.collection import (
    Collection,
    check_judged_documents,
    corpus_path,
    document_text,
    load_corpus,
    load_qrels,
    load_queries,
)
from sbmoe.io.encoded import Encoded
from sbmoe.io.errors import DataFormatError
from sbmoe.io.runs import check_run_against_qrels, read_trec_run, write_trec_run
from sbmoe.models.prefix import PrefixCache, PrefixStates, compute_prefix, prefix_depth
from sbmoe.models.retriever import ModelConfig, Retriever
from sbmoe.retrieval.search import search
from sbmoe.training.config import TrainConfig, set_seed
from sbmoe.training.trainer import train


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def train_stage(
    dataset: str | os.PathLike,
    model_config: ModelConfig,
    train_config: TrainConfig,
    output: str | os.PathLike,
    log: str | os.PathLike,
    split: str = "train",
    valid_split: str | None = "valid",
    device: str | None = None,
    progress: bool = True,
    pooled_queries: str | os.PathLike | None = None,
    pooled_corpus: list[str | os.PathLike] | None = None,
    prefix_queries: str | os.PathLike | None = None,
    prefix_corpus: list[str | os.PathLike] | None = None,
) -> None:
    """Train a model on ``<dataset>/qrels/<split>.tsv`` and save it with its per-epoch log.

    The validation queries come from ``qrels/<valid_split>.tsv`` when that file exists.
    ``pooled_queries`` and ``pooled_corpus`` are caches from :func:`pool_stage` of the frozen encoder;
    ``prefix_queries`` and ``prefix_corpus`` caches from :func:`prefix_stage` (``train_layers`` N).
    """
    dataset = Path(dataset)
    collection, valid = _training_data(dataset, split, valid_split)
    set_seed(model_config.seed)
    pooled = _pooled_cache(pooled_queries, pooled_corpus, {**collection.qrels, **(valid or {})})
    prefix = None
    if prefix_queries or prefix_corpus:
        if not (prefix_queries and prefix_corpus):
            raise ValueError("a prefix cache needs both the queries and the corpus")
        prefix = {
            "query": PrefixCache([PrefixStates.load(prefix_queries)]),
            "doc": PrefixCache([PrefixStates.load(p) for p in prefix_corpus]),
        }
    # with a pooled cache the encoder is never run: build the block alone
    hidden = pooled["query"][1].shape[1] if pooled else None
    model = Retriever(model_config, hidden_size=hidden).to(device or default_device())
    with atomic_path(log) as log_tmp:
        train(
            model,
            collection.corpus,
            collection.queries,
            collection.qrels,
            train_config,
            valid_qrels=valid,
            log_path=log_tmp,
            progress=progress,
            pooled=pooled,
            prefix=prefix,
        )
        model.save(output)


def _training_data(dataset: Path, split: str, valid_split: str | None):
    """The training collection and, when ``qrels/<valid_split>.tsv`` exists, its validation qrels;
    qrels that train nothing are an error naming their file."""
    collection = Collection.load(dataset, split, training=True)
    if not any(grade > 0 for docs in collection.qrels.values() for grade in docs.values()):
        raise DataFormatError(
            dataset / "qrels" / f"{split}.tsv",
            None,
            "no judgement has a positive grade (every "
            "one is 0 or below): training needs a relevant document (grade >= 1) per query",
        )
    valid_path = dataset / "qrels" / f"{valid_split}.tsv" if valid_split else None
    valid = None
    if valid_path and valid_path.is_file():
        valid = check_judged_documents(
            load_qrels(valid_path, queries=collection.queries), collection.corpus, valid_path, drop=True
        )
        if not set(collection.qrels) - set(valid):
            raise DataFormatError(valid_path, None, f"holds every query of qrels/{split}.tsv: none is left to train on")
    elif len(collection.qrels) < 2:
        raise DataFormatError(
            dataset / "qrels" / f"{split}.tsv",
            None,
            "one judged query: training needs at least two (one is held out for validation)",
        )
    return collection, valid


def _pooled_cache(pooled_queries, pooled_corpus, judged: dict) -> dict | None:
    """A frozen encoder's pooled embeddings of the queries and the corpus shards, checked to cover every
    judged query and relevant document; None without a cache."""
    if not (pooled_queries or pooled_corpus):
        return None
    if not (pooled_queries and pooled_corpus):
        raise ValueError("a pooled cache needs both the queries and the corpus")
    queries = Encoded.load(pooled_queries)
    corpus = _load_shards(pooled_corpus, queries.embeddings.shape[1], pooled_queries)
    _check_covers(pooled_queries, queries.ids, judged, "judged queries")
    _check_covers(
        pooled_corpus[0] if len(pooled_corpus) == 1 else f"{pooled_corpus[0]} (and the other shards)",
        corpus.ids,
        {d for docs in judged.values() for d, grade in docs.items() if grade > 0},
        "judged documents",
    )
    return {
        "query": (queries.ids, torch.from_numpy(queries.embeddings)),
        "doc": (corpus.ids, torch.from_numpy(corpus.embeddings)),
    }


def _shard_check(
    path: str | os.PathLike, part: Encoded, dim: int, reference: str | os.PathLike, seen: set[str]
) -> None:
    """A corpus shard must match the queries' dimension and share no id with earlier shards."""
    if part.embeddings.shape[1] != dim:
        raise DataFormatError(
            path, None, f"embeddings have {part.embeddings.shape[1]} dimensions, those of {reference} have {dim}"
        )
    repeated = seen.intersection(part.ids)
    if repeated:
        raise DataFormatError(path, None, f"id {min(repeated)!r} is also in an earlier corpus shard")
    seen.update(part.ids)


def _load_shards(paths: list[str | os.PathLike], dim: int, reference: str | os.PathLike) -> Encoded:
    seen: set[str] = set()
    parts = []
    for path in paths:
        parts.append(Encoded.load(path))
        _shard_check(path, parts[-1], dim, reference, seen)
    return Encoded.concatenate(parts)


def _check_covers(path, ids: list[str], needed, what: str) -> None:
    missing = sorted(set(needed) - set(ids))
    if missing:
        raise DataFormatError(
            path,
            None,
            f"has no embedding of {len(missing)} {what} (e.g. {missing[0]!r}); "
            "was it pooled from another dataset or split?",
        )


def init_stage(model_config: ModelConfig, output: str | os.PathLike) -> None:
    """Save an untrained model: the zero-shot encoder (or a block at its initialisation)."""
    model_config.encoder_trained = False
    Retriever(model_config).save(output)


def _texts(dataset: Path, kind: str, split: str, shard: int, num_shards: int) -> tuple[list[str], list[str]]:
    if kind == "queries":
        queries = load_queries(dataset / "queries.jsonl")
        qrels = load_qrels(dataset / "qrels" / f"{split}.tsv", queries=queries)
        ids = list(qrels)
        return ids, [queries[q] for q in ids]
    if kind != "corpus":
        raise ValueError(f"kind must be 'queries' or 'corpus', got {kind!r}")
    corpus = load_corpus(corpus_path(dataset, split))  # the split's own corpus where it has one, as Collection.load
    ids = list(corpus)
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, {num_shards}), got {shard}")
    size = -(-len(ids) // num_shards)
    ids = ids[shard * size : (shard + 1) * size]
    return ids, [document_text(corpus[d]) for d in ids]


def pool_stage(
    model_dir: str | os.PathLike,
    dataset: str | os.PathLike,
    kind: str,
    output: str | os.PathLike,
    split: str = "test",
    shard: int = 0,
    num_shards: int = 1,
    batch_size: int = 128,
    device: str | None = None,
) -> None:
    """Encode texts with a model's encoder alone (pooled, no block): the cache for frozen encoders."""
    ids, texts = _texts(Path(dataset), kind, split, shard, num_shards)  # bad input fails before the model loads
    model = Retriever.load(model_dir, device or default_device())
    pooled = model.encoder.pool(texts, "query" if kind == "queries" else "doc", batch_size=batch_size)
    Encoded(embeddings=pooled.numpy(), experts=np.full(len(ids), -1), gate=np.zeros((len(ids), 0)), ids=ids).save(
        output
    )


def prefix_stage(
    model_dir: str | os.PathLike,
    dataset: str | os.PathLike,
    kind: str,
    output: str | os.PathLike,
    train_layers: int,
    split: str = "test",
    shard: int = 0,
    num_shards: int = 1,
    batch_size: int = 128,
    device: str | None = None,
) -> None:
    """Cache the hidden states that a model's encoder feeds its top ``train_layers`` layers, for
    texts of a dataset (queries of ``split``, or a corpus shard): the cache for partial fine-tuning."""
    ids, texts = _texts(Path(dataset), kind, split, shard, num_shards)  # bad input fails before the model loads
    encoder = Retriever.load(model_dir, device or default_device())._require_encoder()
    depth = prefix_depth(train_layers, encoder.num_layers)
    if depth is None or depth == encoder.num_layers:
        raise ValueError(
            f"a prefix cache is for 1 to {encoder.num_layers} trained layers, got train_layers {train_layers!r}"
        )
    compute_prefix(encoder, ids, texts, "query" if kind == "queries" else "doc", depth, output, batch_size)


def encode_stage(
    model_dir: str | os.PathLike,
    dataset: str | os.PathLike,
    kind: str,
    poolings: list[str],
    outputs: list[str | os.PathLike],
    split: str = "test",
    shard: int = 0,
    num_shards: int = 1,
    pooled: str | os.PathLike | None = None,
    batch_size: int = 128,
    device: str | None = None,
    prefix: str | os.PathLike | None = None,
) -> None:
    """Encode a collection's queries (of ``split``) or a shard of its corpus once, and write one
    routed encoding per inference pooling (``outputs[i]`` for ``poolings[i]``).

    ``pooled`` is a cache written by :func:`pool_stage` for the same texts; it may only be used
    when the model's encoder was not trained. ``prefix`` is a cache written by :func:`prefix_stage`,
    over which the model's trained top layers run.
    """
    if len(poolings) != len(outputs):
        raise ValueError(f"{len(poolings)} poolings but {len(outputs)} outputs")
    if pooled is not None and prefix is not None:
        raise ValueError("encode from a pooled cache or from a prefix cache, not both")
    if pooled is None and prefix is None:
        ids, texts = _texts(Path(dataset), kind, split, shard, num_shards)  # bad input fails before the model loads
    model = Retriever.load(model_dir, device or default_device(), with_encoder=pooled is None)
    if pooled is not None:
        if model.config.encoder_trained:
            raise ValueError(
                f"{model_dir}: its encoder was trained, so cached pooled embeddings ({pooled}) do not apply"
            )
        cache = Encoded.load(pooled)
        if cache.embeddings.shape[1] != model.hidden_size:
            raise DataFormatError(
                pooled,
                None,
                f"embeddings have {cache.embeddings.shape[1]} dimensions, the model "
                f"{model_dir} takes {model.hidden_size}",
            )
        ids, vectors = cache.ids, torch.from_numpy(cache.embeddings)
    elif prefix is not None:
        states = PrefixStates.load(prefix)
        try:
            ids, vectors = states.ids, model.pool_prefix(states, batch_size=batch_size)
        except ValueError as error:
            raise ValueError(f"{model_dir} with {prefix}: {error}") from None
    else:
        vectors = model.encoder.pool(texts, "query" if kind == "queries" else "doc", batch_size=batch_size)
    for pooling, output in zip(poolings, outputs):
        encoded = model.encode_pooled(vectors, pooling)
        encoded.ids = ids
        encoded.save(output)


def search_stage(
    queries: str | os.PathLike,
    corpus_shards: list[str | os.PathLike],
    output: str | os.PathLike,
    k: int = 1000,
    tag: str = "sbmoe",
    device: str | None = None,
) -> None:
    """Exact top-``k`` search of encoded queries over the encoded corpus shards; a TREC run file."""
    encoded_queries = Encoded.load(queries)
    if not encoded_queries.ids:
        raise DataFormatError(queries, None, "holds no queries (expected encoded queries)")
    dim, seen = encoded_queries.embeddings.shape[1], set()

    def shards():
        for path in corpus_shards:
            part = Encoded.load(path)
            _shard_check(path, part, dim, queries, seen)
            yield part.ids, part.embeddings
        if not seen:
            raise DataFormatError(", ".join(map(str, corpus_shards)), None, "the corpus shards hold no document")

    run = search(encoded_queries.embeddings, shards(), encoded_queries.ids, k=k, device=device or default_device())
    write_trec_run(output, run, tag)


def evaluate_stage(
    run: str | os.PathLike,
    qrels: str | os.PathLike,
    output: str | os.PathLike,
    metrics: list[str] | tuple[str, ...] = METRICS,
    relevance_threshold: int = 1,
    drop_self_hits: bool = False,
) -> dict:
    """Score a TREC run against BEIR qrels; means and per-query values as JSON."""
    for metric in metrics:
        if metric_problem(metric):
            raise ValueError(metric_problem(metric))
    ranked, judged = read_trec_run(run), load_qrels(qrels)
    if not any(grade >= relevance_threshold for docs in judged.values() for grade in docs.values()):
        raise DataFormatError(
            qrels,
            None,
            f"no judgement has a grade of at least {relevance_threshold} "
            "(the relevance threshold): nothing is relevant",
        )
    check_run_against_qrels(ranked, judged, run, qrels)
    result = evaluate(ranked, judged, metrics, relevance_threshold, drop_self_hits, run_name=str(run))
    result = {"run": str(run), "qrels": str(qrels), **result}
    write_json(output, result)
    return result
