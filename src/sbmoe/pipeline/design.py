"""The study's design: which models are trained and evaluated on which test sets, what each job reads
and is told, and which targets the study ends with.

:class:`Study` is built from the validated configuration (the schema's defaults filled in) and the
datasets table. The workflow's rules call its methods; a method that takes ``wildcards`` is an input
or params function (any mapping of wildcard names to values will do). Paths come from
:mod:`sbmoe.pipeline.layout`; routing over whole retrievers from :mod:`sbmoe.pipeline.routing_design`.

A job's params hold exactly what changes its output, so that changing a setting re-runs only the jobs
it touches: the untrained encoder is told its encoder settings and nothing about training.
"""

from __future__ import annotations

from collections.abc import Mapping

from sbmoe.analysis.training_setup import STATED
from sbmoe.data.table import DatasetSpec, benchmark
from sbmoe.pipeline import layout
from sbmoe.pipeline.routing_design import RetrieverRouting
from sbmoe.systems.names import poolings, study_systems, variant_of

PAPER_TABLES = ("dataset_stats", "in_domain", "zero_shot", "reproduction", "experts")
PAPER_FIGURES = ("expert_count", "tsne", "training_curves")
ENCODER_TRAINING_KEYS = ("temperature", "epochs")  # training settings an encoder's entry may set for its models
DEFAULT_CORES_PER_SHARD = 8  # a cluster job's corpus shard, as the other encoding rules ask


def _unique(items) -> list:
    return list(dict.fromkeys(items))


class Study:
    """The design of a study: its systems, models, test sets, shards, job inputs and targets."""

    def __init__(self, config: dict, datasets: Mapping[str, DatasetSpec]):
        self.config = config
        self.datasets = datasets
        self._systems = study_systems(config["systems"])  # name -> model settings and training overrides
        self.train_layers = config["training"].get("train_layers", "all")
        # only the blocks are trained, on the untrained encoder's pooled embeddings
        self.frozen = self.train_layers == 0
        # the top N layers are trained over the cached hidden states entering them, shared by every system
        self.partial = self.train_layers not in (0, "all")
        self.routing = RetrieverRouting(config, datasets, self)

    # ---- systems, test sets and models ----

    @property
    def systems(self) -> list[str]:
        """The system names of the study, in the order of ``config['systems']``."""
        return list(self._systems)

    def testsets(self, trainset: str) -> list[str]:
        """The test sets a model trained on ``trainset`` is evaluated on (in-domain first); the
        untrained encoder (training set ``none``) is evaluated on every test set."""
        if trainset == "none":
            return self.all_testsets()
        return _unique(self.config["in_domain"][trainset] + self._zero_shot().get(trainset, []))

    def all_testsets(self) -> list[str]:
        tests = [t for sets in self.config["in_domain"].values() for t in sets]
        return _unique(tests + [t for sets in self._zero_shot().values() for t in sets])

    def all_datasets(self) -> list[str]:
        return _unique(list(self.config["in_domain"]) + self.all_testsets())

    def _zero_shot(self) -> dict[str, list[str]]:
        return self.config.get("zero_shot") or {}

    def evaluated_systems(self, trainset: str) -> list[str]:
        """The systems one evaluation (or frozen-encoder search) job handles."""
        return ["zeroshot"] if trainset == "none" else self.systems

    def models(self) -> list[dict]:
        """Every model of the study as its keys (the zero-shot encoders have training set ``none``)."""
        found = [
            {"encoder": encoder, "trainset": trainset, "system": system, "seed": seed}
            for encoder in self.config["encoders"]
            for trainset in self.config["in_domain"]
            for system in self.systems
            for seed in self.config["seeds"]
        ]
        if self.config.get("zeroshot", False):
            found += [{"encoder": encoder, **layout.UNTRAINED} for encoder in self.config["encoders"]]
        return found

    def num_shards(self, name: str) -> int:
        """The shards a dataset's corpus is encoded in (``encoding.corpus_shards``)."""
        shards = self.config["encoding"].get("corpus_shards", {})
        return shards.get(name, shards.get("default", 1))

    def cores_per_shard(self, cores: int | None, name: str) -> int:
        """Cores per corpus shard: on one machine of ``cores`` the shards of a corpus share it (one process
        per core encodes faster than one process on all cores). A cluster executor has no total (``None``):
        each job gets its own allocation, as the profile sizes it."""
        if cores is None:
            return DEFAULT_CORES_PER_SHARD
        return max(1, cores // self.num_shards(name))

    def train_corpus(self, trainset: str) -> str:
        """The corpus the training queries are judged on: the training split's own, where it has one."""
        return "corpus.train" if self.datasets[trainset].has_own_corpus("train") else "corpus"

    # ---- settings of a model ----

    def _encoder(self, name: str) -> tuple[dict, dict]:
        """An encoder's settings, and the training settings its entry sets for its models."""
        encoder = dict(self.config["encoders"][name])
        return encoder, {key: encoder.pop(key) for key in ENCODER_TRAINING_KEYS if key in encoder}

    def system_config(self, encoder_name: str, system: str, seed: int) -> dict:
        """The configuration (encoder, model, training, seed) a trained system is built from."""
        encoder, training = self._encoder(encoder_name)
        training = {**self.config["training"], **training, **self._systems[system]["training"]}
        return {"encoder": encoder, "model": dict(self._systems[system]["model"]), "training": training, "seed": seed}

    def training_settings(self) -> list[dict]:
        """The distinct settings the study's trained models use, of the keys the report states
        (:data:`sbmoe.analysis.training_setup.STATED`) and the encoder's ``name_or_path``, in the
        order of the models."""
        found = []
        for model in self.models():
            if model["trainset"] == layout.UNTRAINED["trainset"]:
                continue
            config = self.system_config(model["encoder"], model["system"], model["seed"])
            setting = {key: config["training"][key] for key in STATED}  # the schema filled in every default
            setting["encoder"] = config["encoder"]["name_or_path"]
            if setting not in found:
                found.append(setting)
        return found

    def untrained_config(self, wildcards: Mapping) -> dict:
        """The untrained encoder's configuration: its encoder settings only, since training settings
        do not change it (and every cache built on it would be recomputed if they were there)."""
        encoder, _ = self._encoder(wildcards["encoder"])
        return {"encoder": encoder, "model": {"variant": "finetune"}, "seed": layout.UNTRAINED["seed"]}

    def train_configs(self, wildcards: Mapping) -> list[dict]:
        """The configurations of the systems one training job trains: every system of the study on a
        frozen encoder's pooled cache, else the job's own."""
        systems = self.systems if self.frozen else [wildcards["system"]]
        return [self.system_config(wildcards["encoder"], system, int(wildcards["seed"])) for system in systems]

    # ---- caches and training ----

    def prefix(self, encoder: str, name: str, part: str) -> str:
        return layout.prefix(encoder, self.train_layers, name, part)

    def prefix_corpus_shard(self, wildcards: Mapping) -> str:
        return self.prefix(wildcards["encoder"], wildcards["testset"], layout.corpus_part("corpus", wildcards["shard"]))

    def train_inputs(self, wildcards: Mapping) -> dict:
        """A training job's dataset, the untrained encoder (for a hub encoder, init_model downloads it),
        and the frozen encoder's pooled cache or the prefix cache of the training set."""
        encoder, trainset = wildcards["encoder"], wildcards["trainset"]
        inputs = {"dataset": layout.dataset(trainset), "base_model": layout.untrained_model(encoder)}
        parts = [layout.corpus_part(self.train_corpus(trainset), shard) for shard in range(self.num_shards(trainset))]
        if self.frozen:
            inputs["pooled_queries"] = layout.pooled(encoder, trainset, layout.queries_part("train"))
            inputs["pooled_corpus"] = [layout.pooled(encoder, trainset, part) for part in parts]
        elif self.partial:
            inputs["prefix_queries"] = self.prefix(encoder, trainset, layout.queries_part("train"))
            inputs["prefix_corpus"] = [self.prefix(encoder, trainset, part) for part in parts]
        return inputs

    # ---- search ----

    def search_inputs(self, wildcards: Mapping) -> dict:
        """The model(s), the test set and its corpus (:meth:`corpus_inputs`); a frozen encoder's search
        job handles every system of an encoder, training set and seed."""
        if self.frozen:
            models = [layout.model(wildcards, system=s) for s in self.evaluated_systems(wildcards["trainset"])]
        else:
            models = [layout.model(wildcards)]
        inputs = {"models": models, **self.corpus_inputs(wildcards, wildcards["testset"], "test")}
        if self.partial:  # the queries run through the trained top layers from their cached prefix states
            inputs["prefix"] = self.prefix(wildcards["encoder"], wildcards["testset"], layout.queries_part("test"))
        return inputs

    def corpus_inputs(self, model: Mapping, name: str, split: str) -> dict:
        """What a search of a split of dataset ``name`` reads besides the model: the dataset, and the
        pooled queries and corpus shards of a frozen encoder (the search job routes them itself), else
        the model's encoded test corpus shards."""
        shards = range(self.num_shards(name))
        inputs = {"dataset": layout.dataset(name)}
        if self.frozen:
            inputs["pooled"] = layout.pooled(model["encoder"], name, layout.queries_part(split))
            inputs["pooled_corpus"] = [
                layout.pooled(model["encoder"], name, layout.corpus_part("corpus", s)) for s in shards
            ]
        else:
            inputs["corpus"] = [layout.encoded_shard(model, testset=name, shard=s) for s in shards]
        return inputs

    def search_params(self, wildcards: Mapping) -> list[dict]:
        """Per model of a search job (in the order of its outputs): its poolings and its run tag."""
        names = self.evaluated_systems(wildcards["trainset"]) if self.frozen else [wildcards["system"]]
        return [
            {"poolings": list(poolings(name)), "tag": self.run_tag({**wildcards, "system": name})} for name in names
        ]

    @staticmethod
    def run_tag(keys: Mapping) -> str:
        return "{encoder}-{trainset}-{system}-seed{seed}".format(**{key: keys[key] for key in layout.MODEL_KEYS})

    def encoded_corpus(self, model: Mapping, testset: str) -> list[str]:
        """The folders holding a model's routed corpus of ``testset`` (``<pooling>.npz`` in each shard
        folder): its shard folders, or the search job's ``corpus`` folder of shards (frozen encoder)."""
        if self.frozen:
            return [layout.encoded("corpus", model, testset=testset)]
        return [layout.encoded_shard(model, testset=testset, shard=s) for s in range(self.num_shards(testset))]

    # ---- evaluation ----

    def evaluation_inputs(self, wildcards: Mapping) -> list[str]:
        """The runs of every system of one encoder, training set and seed, on each of its test sets."""
        return [
            layout.runs(wildcards, system=system, testset=testset)
            for system in self.evaluated_systems(wildcards["trainset"])
            for testset in self.testsets(wildcards["trainset"])
        ]

    def evaluation_datasets(self, wildcards: Mapping) -> list[str]:
        return [layout.dataset(t) for t in self.testsets(wildcards["trainset"])]

    def evaluation_params(self, wildcards: Mapping) -> list[dict]:
        """For each evaluated model (in the order of the rule's outputs): its runs and how to score them."""
        sets = self.testsets(wildcards["trainset"])
        return [
            {
                "system": system,
                "poolings": list(poolings(system)),
                "runs": [layout.runs(wildcards, system=system, testset=t) for t in sets],
                "testsets": sets,
                "qrels": [layout.qrels(t) for t in sets],
                "thresholds": [self.datasets[t].relevance_threshold for t in sets],
                "drop_self_hits": [self.datasets[t].drop_self_hits for t in sets],
            }
            for system in self.evaluated_systems(wildcards["trainset"])
        ]

    # ---- targets ----

    def paper_tables(self) -> list[str]:
        return list(PAPER_TABLES) + (["routing"] if self.routing.trainsets else [])

    def paper_figures(self) -> list[str]:
        return list(PAPER_FIGURES) + (["routing"] if self.routing.trainsets else [])

    def evaluations(self) -> list[str]:
        return [layout.evaluation(m) for m in self.models()]

    def training_logs(self) -> list[str]:
        return [layout.train_log(m) for m in self.models() if m["system"] != "zeroshot"]

    def targets(self) -> list[str]:
        """Everything the study reports: evaluations, training logs, tables, figures and the paper."""
        outputs = self.evaluations() + self.training_logs() + [layout.SIGNIFICANCE, layout.VERDICTS]
        outputs += [layout.table(name, "tex") for name in self.paper_tables()]
        outputs += [layout.figure(name, "png") for name in self.paper_figures()]
        if (self.config.get("paper") or {}).get("build", True):
            outputs.append(layout.PAPER)
        return outputs

    # ---- what the analysis reads: every evaluation, routing and training log, with the keys naming it ----

    def evaluation_records(self) -> list[tuple[str, dict]]:
        """(path, keys) for every (model, test set, pooling) of the study."""
        return [
            (layout.evaluation(m), {**m, "testset": t, "pooling": p})
            for m in self.models()
            for t in self.testsets(m["trainset"])
            for p in poolings(m["system"])
        ]

    def gate_logs(self) -> list[tuple[dict, str]]:
        """(keys, training log) of every SB-MoE model: the gate gradient norms the verdicts read."""
        return [(m, layout.train_log(m)) for m in self.models() if variant_of(m["system"]).name == "sbmoe"]

    def in_domain_pairs(self) -> list[list[str]]:
        return [[trainset, testset] for trainset, tests in self.config["in_domain"].items() for testset in tests]

    def routing_records(self) -> list[tuple[dict, str, list[str]]]:
        """(keys, queries folder, corpus shard folders) for every model with a gate, per test set and pooling."""
        return [
            ({**m, "testset": t, "pooling": p}, layout.encoded("queries", m, testset=t), self.encoded_corpus(m, t))
            for m in self.models()
            if variant_of(m["system"]).gated
            for t in self.testsets(m["trainset"])
            for p in poolings(m["system"])
        ]

    def tsne_panels(self) -> list[tuple[dict, str, str, list[str]]]:
        """The t-SNE panels: FT, then the configured SB-MoE system, for one trained model and test set:
        (keys, runs folder, queries folder, corpus shard folders)."""
        tsne = self.config["analysis"]["tsne"]
        panels = []
        for system, pooling in (("finetune", "none"), (tsne["system"], tsne.get("pooling", "top1"))):
            model = {"encoder": tsne["encoder"], "trainset": tsne["trainset"], "system": system, "seed": tsne["seed"]}
            panels.append(
                (
                    {**model, "testset": tsne["testset"], "pooling": pooling},
                    layout.runs(model, testset=tsne["testset"]),
                    layout.encoded("queries", model, testset=tsne["testset"]),
                    self.encoded_corpus(model, tsne["testset"]),
                )
            )
        return panels

    def curve_records(self) -> list[tuple[dict, str]]:
        """Training logs plotted as curves: every system of the first encoder and seed on one training set."""
        trainset = self.config["analysis"].get("curves", next(iter(self.config["in_domain"])))
        encoder, seed = next(iter(self.config["encoders"])), self.config["seeds"][0]
        models = [{"encoder": encoder, "trainset": trainset, "system": system, "seed": seed} for system in self.systems]
        return [(model, layout.train_log(model)) for model in models]

    def zero_shot_trainset(self) -> str:
        return next(iter(self.config["zero_shot"]))

    def dataset_labels(self) -> dict[str, str]:
        return {name: spec.label for name, spec in self.datasets.items()}

    def dataset_benchmarks(self) -> dict[str, str | None]:
        """The benchmark each dataset's test split comes from (None: a test collection of its own), for the
        paper's wording ("BEIR test sets" only for BEIR's)."""
        return {name: benchmark(spec) for name, spec in self.datasets.items()}
