"""The design of routing over whole retrievers (``config['routing']``): which routers are trained, on
which held-out split, over which experts' runs, and what each routing job reads.

A router is trained for each training set of ``routing.trainsets`` (every training set by default) on
its held-out split (``routing.splits``, else ``valid``), over the runs of the experts
(``routing.experts``: ``bm25``, ``zeroshot`` or a system of the study with its pooling), and routes
the queries of every test set of the models trained on that training set.
"""

from __future__ import annotations

from collections.abc import Mapping

from sbmoe.data.table import DatasetSpec
from sbmoe.pipeline import layout
from sbmoe.pipeline.study import routing_split, routing_trainsets
from sbmoe.systems.names import BM25, parse_expert, poolings

DEFAULT_EXPERTS = (BM25, "zeroshot")


class RetrieverRouting:
    """The routers of a study and their experts; ``study`` is its :class:`sbmoe.pipeline.design.Study`."""

    def __init__(self, config: dict, datasets: Mapping[str, DatasetSpec], study):
        settings = config.get("routing") or {}
        self.config = config
        self.settings = settings
        self.datasets = datasets
        self.study = study
        self.trainsets = routing_trainsets(config) if settings else []  # none without a routing section
        self.encoder = settings.get("encoder")
        self.experts = list(settings.get("experts") or DEFAULT_EXPERTS)
        self.seed = settings.get("seed", config["seeds"][0])  # the seed of the trained systems used as experts

    def split(self, trainset: str) -> str:
        """The held-out split the router of ``trainset`` is trained on."""
        return routing_split(self.config, trainset)

    def expert_model(self, name: str, trainset: str) -> tuple[dict, str]:
        """The model keys and pooling of a dense expert; the untrained encoder's training set is ``none``."""
        system, pooling = parse_expert(name)
        if system == "zeroshot":
            return {"encoder": self.encoder, **layout.UNTRAINED}, pooling
        return {"encoder": self.encoder, "trainset": trainset, "system": system, "seed": self.seed}, pooling

    def expert_runs(self, trainset: str, name: str, split: str) -> list[tuple[str, str]]:
        """(folder, file) of each expert's run on a split of dataset ``name``, in the order of the experts:
        BM25's runs, a dense expert's runs of the test set or of its search of a held-out split."""
        found = []
        for expert in self.experts:
            if expert == BM25:
                found.append((layout.bm25("runs", name), f"{split}.trec"))
                continue
            model, pooling = self.expert_model(expert, trainset)
            if split == "test":
                folder = layout.runs(model, testset=name)
            else:
                folder = layout.split_runs(model, dataset=name, split=split)
            found.append((folder, f"{pooling}.trec"))
        return found

    def bm25_splits(self, wildcards: Mapping) -> list[str]:
        """The splits BM25 runs on for a dataset: test where it is a test set, the router's split where
        it is a routed training set."""
        name = wildcards["dataset"]
        splits = []
        if any(name in self.study.testsets(t) for t in self.trainsets):
            splits.append("test")
        if name in self.trainsets:
            splits.append(self.split(name))
        return splits

    def split_search_inputs(self, wildcards: Mapping) -> dict:
        """A dense expert on a held-out split: its model, the dataset, the pooled queries of the split and
        corpus of a frozen encoder, else the model's encoded test corpus."""
        return {
            "models": [layout.model(wildcards)],
            **self.study.corpus_inputs(wildcards, wildcards["dataset"], wildcards["split"]),
        }

    def split_search_params(self, wildcards: Mapping) -> list[dict]:
        """The search script's settings of the one model of a held-out split search: poolings and run tag."""
        return [
            {
                "poolings": list(poolings(wildcards["system"])),
                "tag": f"{self.study.run_tag(wildcards)}-{wildcards['split']}",
            }
        ]

    def _queries(self, name: str, split: str) -> str:
        """The base encoder's pooled queries of a split, which the router reads."""
        return layout.pooled(self.encoder, name, layout.queries_part(split))

    def expert_inputs(self, trainset: str, name: str, split: str) -> dict:
        """Everything the router reads on one split: the experts' run folders, the base encoder's pooled
        queries and the dataset folder."""
        return {
            "runs": [folder for folder, _ in self.expert_runs(trainset, name, split)],
            "queries": self._queries(name, split),
            "dataset": layout.dataset(name),
        }

    def expert_params(self, trainset: str, name: str, split: str) -> dict:
        """The router's description of one split (sbmoe.selection.routing.ExpertInputs)."""
        return {
            "runs": [f"{folder}/{file}" for folder, file in self.expert_runs(trainset, name, split)],
            "queries": self._queries(name, split),
            "dataset": layout.dataset(name),
            "split": split,
            "relevance_threshold": self.datasets[name].relevance_threshold,
            "drop_self_hits": self.datasets[name].drop_self_hits,
        }

    def router_inputs(self, wildcards: Mapping) -> dict:
        trainset = wildcards["trainset"]
        return self.expert_inputs(trainset, trainset, self.split(trainset))

    def router_params(self, wildcards: Mapping) -> dict:
        trainset = wildcards["trainset"]
        return self.expert_params(trainset, trainset, self.split(trainset))

    def route_inputs(self, wildcards: Mapping) -> dict:
        """The router, and the experts' runs, pooled queries and dataset of every test set it routes."""
        found = {"router": layout.router("router", wildcards), "runs": [], "queries": [], "datasets": []}
        for testset in self.study.testsets(wildcards["trainset"]):
            split = self.expert_inputs(wildcards["trainset"], testset, "test")
            found["runs"] += split["runs"]
            found["queries"].append(split["queries"])
            found["datasets"].append(split["dataset"])
        return found

    def route_params(self, wildcards: Mapping) -> dict:
        trainset = wildcards["trainset"]
        return {testset: self.expert_params(trainset, testset, "test") for testset in self.study.testsets(trainset)}

    def router_records(self) -> list[tuple[str, str, str]]:
        """(training set, evaluation JSON, choices JSON) of every routed training set."""
        return [
            (
                trainset,
                layout.router("eval.json", encoder=self.encoder, trainset=trainset),
                layout.router("choices.json", encoder=self.encoder, trainset=trainset),
            )
            for trainset in self.trainsets
        ]

    def router_pairs(self) -> list[list[str]]:
        return [[trainset, testset] for trainset in self.trainsets for testset in self.study.testsets(trainset)]

    def macro_inputs(self, wildcards=None) -> dict:
        """The routing table and figure data the paper's macros read, where the study routes."""
        if not self.trainsets:
            return {}
        return {"routing": layout.table("routing", "csv"), "routing_figure": layout.figure("routing", "json")}
