"""Checks of a study configuration that a JSON schema cannot express.

The pipeline reads the datasets table with :func:`study_table` and calls :func:`check_study` before
any job starts, so that a configuration naming an unknown dataset, encoder, system or metric, a
dataset that cannot be found offline, or an analysis of a model the study does not train, stops the
run with a message naming the key.
"""

from __future__ import annotations

import os
from pathlib import Path

from sbmoe.data.table import MIRROR_ENV, VALIDATION_SPLIT, DatasetSpec, load_table
from sbmoe.evaluation.metrics import metric_problem
from sbmoe.io.errors import InputError, read_yaml
from sbmoe.models.hub import encoder_depth, model_path_problem
from sbmoe.systems.names import BM25, parse_expert, poolings, study_systems
from sbmoe.systems.registry import variant


class StudyError(InputError):
    """A configuration key whose value the study cannot use."""


def check_config_files(paths: list[str | os.PathLike]) -> None:
    """Read again each configuration file Snakemake was given (``configfile:``, ``--configfile``):
    Snakemake's reader keeps the last of two equal keys, so a second ``training:`` appended to a file
    would replace the whole section without a word. A duplicate key names the file, line and key."""
    for path in paths:
        read_yaml(path, "a study configuration in YAML")


def study_table(config: dict) -> dict[str, DatasetSpec]:
    """The datasets table ``datasets.table`` names; a missing or invalid table names the key."""
    path = Path(config["datasets"]["table"])
    if not path.is_file():
        raise StudyError(
            f"datasets.table: file {str(path)!r} does not exist (expected the datasets table, "
            "e.g. workflow/datasets.yaml)"
        )
    try:
        return load_table(path)
    except InputError as error:
        raise StudyError(f"datasets.table: {error}") from None


def _check_encoder(name: str, path: str) -> None:
    problem = model_path_problem(path)
    if problem:
        raise StudyError(f"encoders.{name}.name_or_path: {path!r}: {problem}")


def _check_dataset(key: str, name: str, table: dict[str, DatasetSpec], split: str = "test") -> None:
    if name not in table:
        raise StudyError(f"{key}: unknown dataset {name!r} (the dataset table lists {sorted(table)})")
    if split not in table[name].splits:
        raise StudyError(f"{key}: dataset {name!r} has no {split!r} split (it has {sorted(table[name].splits)})")


def _check_test_sets(config: dict, table: dict[str, DatasetSpec]) -> None:
    """Every training and test set is in the table with the split it is used for; a zero-shot set is
    none the models trained on, and no test set is scored on the queries its models train on."""
    for trainset, tests in config["in_domain"].items():
        _check_dataset(f"in_domain.{trainset}", trainset, table, "train")
        for test in tests:
            _check_dataset(f"in_domain.{trainset}", test, table)
    for trainset, tests in (config.get("zero_shot") or {}).items():
        if trainset not in config["in_domain"]:
            raise StudyError(f"zero_shot.{trainset}: not a training set of in_domain ({sorted(config['in_domain'])})")
        for test in tests:
            _check_dataset(f"zero_shot.{trainset}", test, table)
            if test == trainset or test in config["in_domain"][trainset]:
                what = "the training set itself" if test == trainset else f"listed in in_domain.{trainset}"
                raise StudyError(
                    f"zero_shot.{trainset}: {test!r} is {what}: its results are in-domain, "
                    "not zero-shot (list only datasets the models never saw)"
                )
    for key, tested in (("in_domain", config["in_domain"]), ("zero_shot", config.get("zero_shot") or {})):
        for trainset, tests in tested.items():
            train = table[trainset].splits["train"].ir_datasets
            for test in tests:
                if train and train == table[test].splits["test"].ir_datasets:
                    raise StudyError(
                        f"{key}.{trainset}: {test!r} is tested on the queries {trainset!r} trains on "
                        f"(both ir_datasets {train}); fix the splits in {config['datasets']['table']}"
                    )


def check_study(
    config: dict, table: dict[str, DatasetSpec], resources: str | os.PathLike = "resources/datasets"
) -> None:
    """Raise :class:`StudyError` naming the first key of ``config`` the study cannot use."""
    for name, encoder in config["encoders"].items():
        _check_encoder(name, encoder["name_or_path"])
    _check_test_sets(config, table)
    mirror, key = config["datasets"].get("mirror") or "", "datasets.mirror"
    if not mirror:
        mirror, key = os.environ.get(MIRROR_ENV, ""), f"{MIRROR_ENV} (environment variable; datasets.mirror is empty)"
    if mirror and not Path(mirror).is_dir():
        raise StudyError(f"{key}: folder {mirror!r} does not exist")
    if config["datasets"].get("offline"):
        needed = set(config["in_domain"]) | {t for tests in config["in_domain"].values() for t in tests}
        needed |= {t for tests in (config.get("zero_shot") or {}).values() for t in tests}
        for name in sorted(needed):
            places = [Path(resources) / name] + ([Path(mirror) / name] if mirror else [])
            if not any((place / "corpus.jsonl").is_file() for place in places):
                raise StudyError(
                    f"datasets.offline: dataset {name!r} is in neither {places[0]}/ nor the mirror "
                    f"({mirror or 'none set'}); put corpus.jsonl, queries.jsonl and qrels/<split>.tsv there"
                )

    try:
        systems = list(study_systems(config["systems"]))  # refuses keys an entry's variant does not take
    except ValueError as error:
        raise StudyError(str(error)) from None
    _check_layers(config)
    if "finetune" not in systems:
        raise StudyError("systems: every system is compared with FT, but no {variant: finetune} is listed")
    for index, metric in enumerate((config.get("evaluation") or {}).get("metrics") or []):
        problem = metric_problem(metric)
        if problem:
            raise StudyError(f"evaluation.metrics[{index}]: {problem}")
    studied = set(config["in_domain"]) | {t for tests in config["in_domain"].values() for t in tests}
    studied |= {t for tests in (config.get("zero_shot") or {}).values() for t in tests}
    for name in (config.get("encoding") or {}).get("corpus_shards") or {}:
        if name != "default" and name not in studied:
            raise StudyError(
                f"encoding.corpus_shards.{name}: not a dataset of the study ({sorted(studied)}, or 'default')"
            )
    _check_analysis(config, list(systems))
    if config.get("routing"):
        _check_routing(config, table, list(systems))


def _check_layers(config: dict) -> None:
    """The systems whose block sits inside the encoder need trained encoder layers, and their layers
    must be among them; a top-k router picks among its experts."""
    train_layers = config["training"].get("train_layers", "all")
    _check_train_layers(config, train_layers)
    for index, entry in enumerate(config["systems"]):
        spec = variant(entry["variant"])
        if spec.inside_encoder and train_layers == 0:
            raise StudyError(
                f"systems[{index}]: the {spec.label} is inside the encoder, so it needs "
                "training.train_layers >= 1 (a frozen encoder trains nothing inside it)"
            )
        if "top_k" in spec.keys:
            for experts in entry["experts"]:
                if not 1 <= entry.get("top_k", spec.keys["top_k"]) <= experts:
                    raise StudyError(f"systems[{index}].top_k: must be between 1 and the number of experts ({experts})")
        layers = entry.get("moe_layers", spec.keys.get("moe_layers") or [])
        for layer in layers:
            if train_layers != "all" and not -train_layers <= layer < 0:
                raise StudyError(
                    f"systems[{index}].moe_layers: layer {layer} is not among the top {train_layers} "
                    f"trained layers (training.train_layers); name them -1 (the top layer) to -{train_layers}"
                )
        _check_moe_layers(config, index, layers)


def _check_analysis(config: dict, systems: list[str]) -> None:
    analysis = config.get("analysis") or {}
    evaluated = (config.get("evaluation") or {}).get("metrics")
    for index, metric in enumerate(analysis.get("metrics") or []):
        if evaluated is not None and metric not in evaluated:
            raise StudyError(
                f"analysis.metrics[{index}]: {metric!r} is not evaluated; the reported metrics must be "
                f"among evaluation.metrics ({', '.join(evaluated)})"
            )
    tsne = analysis.get("tsne")
    if tsne:
        if tsne["encoder"] not in config["encoders"]:
            raise StudyError(
                f"analysis.tsne.encoder: unknown encoder {tsne['encoder']!r} "
                f"(the study's: {sorted(config['encoders'])})"
            )
        if tsne["trainset"] not in config["in_domain"]:
            raise StudyError(
                f"analysis.tsne.trainset: {tsne['trainset']!r} is not a training set of in_domain "
                f"({sorted(config['in_domain'])})"
            )
        tested = list(config["in_domain"][tsne["trainset"]]) + list(
            (config.get("zero_shot") or {}).get(tsne["trainset"]) or []
        )
        if tsne["testset"] not in tested:
            raise StudyError(
                f"analysis.tsne.testset: {tsne['testset']!r} is not a test set of the models trained on "
                f"{tsne['trainset']!r} ({tested})"
            )
        if tsne["system"] not in systems:
            raise StudyError(f"analysis.tsne.system: {tsne['system']!r} is not one of the study's systems {systems}")
        pooling = tsne.get("pooling", "top1")
        if pooling not in poolings(tsne["system"]):
            raise StudyError(
                f"analysis.tsne.pooling: {tsne['system']!r} is read with {list(poolings(tsne['system']))}, "
                f"not {pooling!r}"
            )
        if tsne["seed"] not in config["seeds"]:
            raise StudyError(f"analysis.tsne.seed: {tsne['seed']} is not one of seeds {config['seeds']}")
    curves = analysis.get("curves")
    if curves is not None and curves not in config["in_domain"]:
        raise StudyError(
            f"analysis.curves: {curves!r} is not a training set of in_domain ({sorted(config['in_domain'])})"
        )


def _check_train_layers(config: dict, train_layers) -> None:
    """``training.train_layers`` is ``all`` or a whole number of layers no larger than any encoder's
    depth (read from the encoder's configuration; a hub model not in the local cache is not fetched
    for it, the job that loads it checks it)."""
    if train_layers == "all":
        return
    if isinstance(train_layers, bool) or not isinstance(train_layers, int):
        hint = f" (write {int(train_layers)})" if isinstance(train_layers, float) and train_layers.is_integer() else ""
        raise StudyError(f"training.train_layers: {train_layers!r} is not 'all' or a whole number of layers{hint}")
    for name, encoder in config["encoders"].items():
        depth = encoder_depth(encoder["name_or_path"])
        if depth is not None and train_layers > depth:
            raise StudyError(
                f"training.train_layers: {train_layers} top layers asked, but encoder {name!r} "
                f"({encoder['name_or_path']}) has {depth}; use at most {depth}, or 'all'"
            )


def _check_moe_layers(config: dict, index: int, layers: list[int]) -> None:
    """The Regular MoE's ``moe_layers`` exist in every encoder (-1 is the top layer, 0 the bottom one)
    and name no layer twice."""
    for name, encoder in config["encoders"].items():
        depth = encoder_depth(encoder["name_or_path"])
        if depth is None:
            continue
        for layer in layers:
            if not -depth <= layer < depth:
                raise StudyError(
                    f"systems[{index}].moe_layers: layer {layer} does not exist in encoder {name!r} "
                    f"({encoder['name_or_path']}, {depth} layers: 0 to {depth - 1}, or -1 to -{depth})"
                )
        indices = [layer % depth for layer in layers]
        if len(set(indices)) != len(indices):
            raise StudyError(
                f"systems[{index}].moe_layers: {layers} names a layer of encoder {name!r} twice "
                f"({depth} layers: -1 is layer {depth - 1})"
            )


def routing_split(config: dict, dataset: str) -> str:
    """The held-out split a dataset's router is trained on: ``routing.splits`` or ``valid``."""
    return ((config.get("routing") or {}).get("splits") or {}).get(dataset, VALIDATION_SPLIT)


def routing_trainsets(config: dict) -> list[str]:
    """The training sets whose routers the study trains (``routing.trainsets``, else every one)."""
    return list((config.get("routing") or {}).get("trainsets") or config["in_domain"])


def _check_routing(config: dict, table: dict[str, DatasetSpec], systems: list[str]) -> None:
    routing = config["routing"]
    if routing["encoder"] not in config["encoders"]:
        raise StudyError(
            f"routing.encoder: unknown encoder {routing['encoder']!r} (encoders: {sorted(config['encoders'])})"
        )
    if "seed" in routing and routing["seed"] not in config["seeds"]:
        raise StudyError(f"routing.seed: {routing['seed']} is not one of seeds {config['seeds']}")
    experts = routing.get("experts") or [BM25, "zeroshot"]
    parsed: dict[tuple, str] = {}
    for name in experts:
        try:
            system, pooling = parse_expert(name)
        except ValueError as error:
            raise StudyError(f"routing.experts: {error}") from None
        if system not in (BM25, "zeroshot", *systems):
            raise StudyError(f"routing.experts: {name!r} is not bm25, zeroshot or one of the study's systems {systems}")
        if (system, pooling) in parsed:  # e.g. sbmoe-learned-e3 and sbmoe-learned-e3/top1
            raise StudyError(
                f"routing.experts: {name!r} is the retriever {parsed[system, pooling]!r} again "
                f"({system}, pooling {pooling}); the router and WSUM would count it twice"
            )
        parsed[system, pooling] = name
    step = routing.get("wsum_step", 0.1)
    if abs(1 / step - round(1 / step)) > 1e-9:
        raise StudyError(
            f"routing.wsum_step: {step} does not divide 1 into whole steps (1/{step} = {1 / step:.4g}); "
            "the WSUM weights sum to 1 on its grid: use e.g. 0.1, 0.2, 0.25 or 0.5"
        )
    features = (routing.get("router") or {}).get("features", ["length", BM25])
    if BM25 in features and BM25 not in experts:
        raise StudyError("routing.router.features: the bm25 features need bm25 among routing.experts")
    for trainset in routing_trainsets(config):
        if trainset not in config["in_domain"]:
            raise StudyError(
                f"routing.trainsets: {trainset!r} is not a training set of in_domain ({sorted(config['in_domain'])})"
            )
    for dataset, split in (routing.get("splits") or {}).items():
        _check_dataset(f"routing.splits.{dataset}", dataset, table, "train" if split == VALIDATION_SPLIT else split)
    for trainset in routing_trainsets(config):
        split = routing_split(config, trainset)
        key = f"routing.splits.{trainset}"
        if split == "train":
            raise StudyError(
                f"{key}: the router must be trained on queries the experts were not trained on, not 'train'"
            )
        source = "train" if split == VALIDATION_SPLIT else split
        _check_dataset(key, trainset, table, source)
        if table[trainset].has_own_corpus(source):
            raise StudyError(
                f"{key}: the {split!r} queries of {trainset!r} are judged on their own corpus "
                "(not the test corpus every expert searches); name another split"
            )
        _check_held_out(config, table, trainset, split)


def _check_held_out(config: dict, table: dict[str, DatasetSpec], trainset: str, split: str) -> None:
    """The router and the WSUM weights of ``trainset`` learn on its ``split`` and are applied to the
    test split of every test set of its models (in-domain and zero-shot): none of those may be the
    queries they learnt on (the same split of the same dataset, or the same ir_datasets queries)."""
    source = table[trainset].splits.get("train" if split == VALIDATION_SPLIT else split)
    tested = list(config["in_domain"][trainset]) + list((config.get("zero_shot") or {}).get(trainset) or [])
    for testset in dict.fromkeys(tested):
        test_source = table[testset].splits.get("test")
        same = testset == trainset and split == "test"
        if source is not None and source.ir_datasets and test_source is not None:  # 'valid' is carved from train
            same = same or source.ir_datasets == test_source.ir_datasets
        if same:
            raise StudyError(
                f"routing.splits.{trainset}: the router and the WSUM weights would learn on the "
                f"{split!r} queries of {trainset!r} and be scored on the test queries of {testset!r}, "
                f"the same queries; name a held-out split (e.g. {VALIDATION_SPLIT!r}, carved from train)"
            )
