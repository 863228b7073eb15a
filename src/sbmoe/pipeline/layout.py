"""Where the study keeps every artefact: one path template per artefact, each spelled once.

A template's fields are the workflow's wildcards (``{encoder}``, ``{trainset}``, ``{system}``,
``{seed}``, ``{testset}``, ``{dataset}``, ``{split}``, ``{corpus}``, ``{shard}``). Each function
fills the fields it is given and leaves the others as wildcards, so that a rule's output pattern
and the concrete path an input function asks for come from the same template::

    model()                                   # results/models/{encoder}/{trainset}/{system}/seed{seed}/model
    model(system="finetune")                  # results/models/{encoder}/{trainset}/finetune/seed{seed}/model
    model(encoder="tiny", trainset="scifact", system="finetune", seed=1)

A model is named by its encoder, training set, system and seed; the untrained encoder (the zero-shot
system, base of the pooled and prefix caches) is the model of training set ``none``, system
``zeroshot`` and seed 0. Each job's log is ``logs/<job>.log`` and its benchmark
``benchmarks/<job>.tsv``, for the job's name in :data:`JOBS` (:func:`log`, :func:`benchmark`).
"""

from __future__ import annotations

from collections.abc import Mapping

MODEL = "{encoder}/{trainset}/{system}/seed{seed}"
UNTRAINED = {"trainset": "none", "system": "zeroshot", "seed": 0}  # the untrained encoder's model keys
MODEL_KEYS = ("encoder", "trainset", "system", "seed")


class _Wildcards(dict):
    """Keys to fill; a field without a key stays a wildcard."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, keys: Mapping | None = None, **more) -> str:
    """``template`` with the fields named in ``keys`` and ``more`` filled in, the others left as
    wildcards; keys the template does not name are ignored."""
    return template.format_map(_Wildcards({**(keys or {}), **more}))


SEED = "{encoder}/{trainset}/seed{seed}"  # the jobs of a training set and seed that handle every system

# The name of each job (``<job>`` in logs/<job>.log, benchmarks/<job>.tsv), by rule; ``_frozen``: the
# rule's job on a frozen encoder, which handles every system of a training set and seed at once.
JOBS = {
    "export_dataset": "datasets/{dataset}",
    "dataset_stats": "analysis/dataset_stats",
    "init_model": "models/{encoder}/zeroshot",
    "pool_queries": "pooled/{encoder}/{dataset}/queries-{split}",
    "pool_corpus": "pooled/{encoder}/{dataset}/{corpus}-{shard}",
    "prefix_queries": "prefix/{encoder}/top{layers}/{dataset}/queries-{split}",
    "prefix_corpus": "prefix/{encoder}/top{layers}/{dataset}/{corpus}-{shard}",
    "train": f"train/{MODEL}",
    "train_frozen": f"train/{SEED}",
    "encode_corpus": f"encode/{MODEL}/{{testset}}/corpus-{{shard}}",
    "search": f"search/{MODEL}/{{testset}}",
    "search_frozen": f"search/{SEED}/{{testset}}",
    "evaluate": f"evaluate/{SEED}",
    "bm25": "bm25/{dataset}",
    "search_split": f"routing/search/{MODEL}/{{dataset}}-{{split}}",
    "train_router": "routing/{encoder}/{trainset}/train_router",
    "route": "routing/{encoder}/{trainset}/route",
    "paper": "paper",
}


def log(job: str, keys: Mapping | None = None, **more) -> str:
    """The log of a job of :data:`JOBS`."""
    return fill(f"logs/{JOBS[job]}.log", keys, **more)


def benchmark(job: str, keys: Mapping | None = None, **more) -> str:
    """The benchmark (time and memory) of a job of :data:`JOBS`."""
    return fill(f"benchmarks/{JOBS[job]}.tsv", keys, **more)


# ---- datasets ----


def dataset(name: str = "{dataset}") -> str:
    """A dataset in BEIR layout: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``."""
    return f"resources/datasets/{name}"


def qrels(name: str, split: str = "test") -> str:
    return f"{dataset(name)}/qrels/{split}.tsv"


def corpus_part(corpus: str = "{corpus}", shard="{shard}") -> str:
    """A corpus shard's name in the caches: ``corpus-<shard>`` (the test corpus), ``corpus.<split>-<shard>``
    (the own corpus of a split, as BEIR's NQ training set)."""
    return f"{corpus}-{shard}"


def corpus_split(corpus: str) -> str:
    """The split whose corpus ``corpus`` names: ``corpus`` is the test split's, ``corpus.<split>`` a split's own."""
    return corpus.partition(".")[2] or "test"


def queries_part(split: str = "{split}") -> str:
    return f"queries-{split}"


# ---- models: the untrained encoder, the trained systems and their training logs ----


def model(keys: Mapping | None = None, **more) -> str:
    return fill(f"results/models/{MODEL}/model", keys, **more)


def untrained_model(encoder: str = "{encoder}") -> str:
    return model(encoder=encoder, **UNTRAINED)


def train_log(keys: Mapping | None = None, **more) -> str:
    return fill(f"results/models/{MODEL}/train_log.jsonl", keys, **more)


# ---- caches of the untrained encoder: pooled embeddings (frozen encoder), prefix states (top N layers) ----


def pooled(encoder: str = "{encoder}", name: str = "{dataset}", part: str = "{part}") -> str:
    """A dataset's pooled embeddings of queries (``queries-<split>``) or a corpus shard (:func:`corpus_part`)."""
    return f"results/pooled/{encoder}/{name}/{part}.npz"


def prefix(encoder: str, layers, name: str, part: str) -> str:
    """The hidden states entering the top ``layers`` layers of ``encoder``, for a dataset's queries or corpus shard."""
    return f"results/prefix/{encoder}/top{layers}/{name}/{part}"


# ---- retrieval: encoded (routed) texts of a test set, and runs ----


def encoded(kind: str, keys: Mapping | None = None, **more) -> str:
    """A model's encoded ``queries`` or ``corpus`` of a test set; the corpus folder holds a folder per shard."""
    return fill(f"results/encoded/{MODEL}/{{testset}}/{kind}", keys, **more)


def encoded_shard(keys: Mapping | None = None, **more) -> str:
    return fill(f"{encoded('corpus')}/{{shard}}", keys, **more)


def runs(keys: Mapping | None = None, **more) -> str:
    """A model's runs on a test set: ``<pooling>.trec`` for each of its poolings."""
    return fill(f"results/runs/{MODEL}/{{testset}}", keys, **more)


def evaluation(keys: Mapping | None = None, **more) -> str:
    return fill(f"results/eval/{MODEL}.json", keys, **more)


# ---- routing over whole retrievers: BM25, the dense experts on held-out splits, routers ----


def bm25(part: str, name: str = "{dataset}") -> str:
    """A dataset's BM25 ``index`` or ``runs`` folder (``<split>.trec`` in it)."""
    return f"results/bm25/{name}/{part}"


def split_encoded(kind: str, keys: Mapping | None = None, **more) -> str:
    """A dense expert's encoded ``queries`` (or routed ``corpus``) of a held-out split: scratch."""
    return fill(f"results/routing/encoded/{MODEL}/{{dataset}}/{{split}}/{kind}", keys, **more)


def split_runs(keys: Mapping | None = None, **more) -> str:
    return fill(f"results/routing/dense/{MODEL}/{{dataset}}/{{split}}", keys, **more)


def router(part: str, keys: Mapping | None = None, **more) -> str:
    """A training set's ``router``, its ``runs`` on the test sets, ``eval.json`` and ``choices.json``."""
    return fill(f"results/routing/{{encoder}}/{{trainset}}/{part}", keys, **more)


# ---- analysis and paper ----

ANALYSIS = "results/analysis"
SIGNIFICANCE = f"{ANALYSIS}/significance.json"
ROUTING_SIGNIFICANCE = f"{ANALYSIS}/routing_significance.json"
MACROS = f"{ANALYSIS}/macros.tex"
VERDICTS = f"{ANALYSIS}/verdicts.json"
VERDICTS_SECTION = f"{ANALYSIS}/verdicts.tex"
VERDICTS_ABSTRACT = f"{ANALYSIS}/verdicts_abstract.tex"
DATASET_STATS = f"{ANALYSIS}/dataset_stats.json"
PAPER_SOURCE = "paper/main.tex"
PAPER = "results/paper/main.pdf"


def table(name: str, ext: str) -> str:
    return f"{ANALYSIS}/tables/{name}.{ext}"


def figure(name: str, ext: str) -> str:
    return f"{ANALYSIS}/figures/{name}.{ext}"
