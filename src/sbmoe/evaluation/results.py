"""Evaluation results as a tidy table: one row per evaluation.

An evaluation is identified by its keys (:data:`KEYS`): encoder, training set, system id, seed,
test set and pooling. System ids follow the pipeline's vocabulary:

- ``zeroshot``: the encoder without training; ``finetune``: FT, the encoder trained without MoE;
- ``adapter-<combination>``: one expert and no gate;
- ``sbmoe-<combination>-e<E>``: SB-MoE with E experts;
- ``random-gate-e<E>``: SB-MoE whose gate is replaced by a random one (the RANDOM-GATE ablation);
- ``regular-moe-e<E>-k<k>``: MoE feed-forward sub-layers inside the encoder, top-k of E experts per token;
- any of these followed by the training settings it overrides, e.g. ``finetune-elr2e-5``
  (names made by :func:`sbmoe.systems.names.system_name` and read by :func:`sbmoe.systems.names.parse_system`).

The combination is ``paper`` (the authors' formula, in which the gate gets no gradient) or
``learned`` (ours, in which the gate learns). Pooling is ``top1`` or ``all`` for SB-MoE,
``top1`` for RANDOM-GATE and ``none`` for systems without a gate (:mod:`sbmoe.systems.registry`); labels
and row order come from :mod:`sbmoe.systems.labels`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from sbmoe.io.errors import DataFormatError, read_json
from sbmoe.systems.labels import display_label
from sbmoe.systems.names import parse_system

KEYS = ("encoder", "trainset", "system", "seed", "testset", "pooling")
GROUP_KEYS = ("encoder", "trainset", "system", "pooling", "testset")
# The metrics the tables, figures, significance tests and macros report unless the configuration
# (analysis.metrics) says otherwise; the metrics computed are sbmoe.evaluation.metrics.METRICS.
REPORTED_METRICS = ("ndcg@10", "recall@100")


def read_evaluation(path: str | Path, testset: str | None = None, pooling: str | None = None) -> dict:
    """Read one evaluation (``metrics``, ``per_query``, ``relevance_threshold``, ``num_queries``).

    The file holds either that evaluation or, as the pipeline's evaluate step writes it, every
    evaluation of one model as ``{testset: {pooling: evaluation}}``; ``testset`` and ``pooling``
    then choose one.
    """
    evaluation = read_json(path, "an evaluation in JSON")
    if not isinstance(evaluation, dict):
        raise DataFormatError(
            path, None, "expected a JSON object (an evaluation, or evaluations by test set and pooling)"
        )
    if "metrics" not in evaluation:
        try:
            evaluation = evaluation[testset][pooling]
        except KeyError:
            raise ValueError(f"{path}: no evaluation for test set {testset!r} and pooling {pooling!r}") from None
    missing = {"metrics", "per_query"} - set(evaluation)
    if missing:
        raise ValueError(f"{path}: evaluation JSON lacks {sorted(missing)}")
    return evaluation


def load_results(records: Iterable[tuple[Mapping, str | Path]]) -> pd.DataFrame:
    """Gather evaluation JSONs into one DataFrame.

    ``records`` are ``(keys, path)`` pairs, ``keys`` a dict with every name in :data:`KEYS`; the
    path is read by :func:`read_evaluation` with the keys' test set and pooling.
    Columns: the keys, ``variant``, ``combination``, ``num_experts``, ``label``, one column per metric
    found, ``relevance_threshold``, ``num_queries``, ``path`` and ``per_query`` (the evaluation's
    ``{metric: {qid: score}}`` dict).
    """
    rows = []
    for keys, path in records:
        missing = [key for key in KEYS if key not in keys]
        if missing:
            raise ValueError(f"{path}: keys lack {missing}")
        evaluation = read_evaluation(path, keys["testset"], keys["pooling"])
        row = {key: keys[key] for key in KEYS}
        row.update(parse_system(row["system"]))
        row["label"] = display_label(row["system"], row["pooling"])
        row.update({metric: float(value) for metric, value in evaluation["metrics"].items()})
        row["relevance_threshold"] = evaluation.get("relevance_threshold")
        row["num_queries"] = evaluation.get("num_queries")
        row["path"] = str(path)
        row["per_query"] = evaluation["per_query"]
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=[*KEYS, "variant", "combination", "num_experts", "label", "path", "per_query"])
    duplicated = frame.duplicated(subset=list(KEYS), keep=False)
    if duplicated.any():
        raise ValueError(f"several records share the same keys: {frame.loc[duplicated, list(KEYS)].to_dict('records')}")
    return frame


def aggregate_seeds(results: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Mean and sample standard deviation over seeds of each metric, per :data:`GROUP_KEYS`.

    Columns: the group keys, ``variant``, ``combination``, ``num_experts``, ``label``, ``seeds`` and for
    each metric ``<metric>`` (mean) and ``<metric>_std`` (0 with one seed).
    """
    descriptors = ["variant", "combination", "num_experts", "label"]
    rows = []
    for group, frame in results.groupby(list(GROUP_KEYS), sort=False, dropna=False):
        row = dict(zip(GROUP_KEYS, group))
        row.update({name: frame[name].iloc[0] for name in descriptors})
        row["seeds"] = len(frame)
        for metric in metrics:
            values = frame[metric].dropna() if metric in frame else pd.Series(dtype=float)
            row[metric] = float(values.mean()) if len(values) else math.nan
            row[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else (0.0 if len(values) else math.nan)
        rows.append(row)
    columns = [*GROUP_KEYS, *descriptors, "seeds", *(f"{m}{s}" for m in metrics for s in ("", "_std"))]
    return pd.DataFrame(rows, columns=columns)


def pooling_file(path: str | Path, pooling: str, suffix: str) -> Path:
    """The file of one pooling: ``path`` itself, or ``path/<pooling><suffix>`` when ``path`` is one of
    the pipeline's per-model folders (encoded texts: ``.npz``; runs: ``.trec``)."""
    path = Path(path)
    return path / f"{pooling}{suffix}" if path.is_dir() else path


def corpus_files(paths: Sequence[str | Path], pooling: str) -> list[Path]:
    """The ``.npz`` files of one pooling for a routed corpus given as files, shard folders (holding
    ``<pooling>.npz``) or folders of numbered shard folders (a frozen encoder's search job), in
    shard order."""
    files = []
    for path in map(Path, paths):
        shards = _numbered_folders(path)
        files += [pooling_file(shard, pooling, ".npz") for shard in shards] or [pooling_file(path, pooling, ".npz")]
    return files


def _numbered_folders(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    return sorted(
        (child for child in path.iterdir() if child.is_dir() and child.name.isdigit()), key=lambda c: int(c.name)
    )


def group_by_counts(items: Sequence, counts: Sequence[int] | None) -> list[list]:
    """Split a flat list into consecutive groups of ``counts`` items (one item each by default),
    e.g. the corpus shards of several models given to Snakemake as one flat input list."""
    counts = [1] * len(items) if counts is None else list(counts)
    if sum(counts) != len(items):
        raise ValueError(f"{len(items)} items cannot be split into groups of {counts}")
    starts = [sum(counts[:index]) for index in range(len(counts))]
    return [list(items[start : start + count]) for start, count in zip(starts, counts)]


def place_untrained(results: pd.DataFrame, trainsets: Sequence[str] | None = None) -> pd.DataFrame:
    """Repeat the rows of the untrained encoder (``zeroshot``, whose training set is a placeholder)
    under each training set, so that it sits beside the systems trained there; ``trainsets``
    defaults to every training set of the trained systems."""
    untrained = results["variant"] == "zeroshot"
    if not untrained.any():
        return results
    if trainsets is None:
        trainsets = list(dict.fromkeys(results.loc[~untrained, "trainset"]))
    copies = [results[untrained].assign(trainset=trainset) for trainset in trainsets]
    return pd.concat([results[~untrained], *copies], ignore_index=True)
