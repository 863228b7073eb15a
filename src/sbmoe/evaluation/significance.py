"""Statistical significance of per-query differences between retrieval systems.

Two paired two-sided tests, selectable by name (:data:`TESTS`):

- ``"t-test"``: Student's paired t-test (:func:`scipy.stats.ttest_rel`);
- ``"randomization"``: Fisher's randomization test, which flips the sign of each per-query
  difference at random (seeded) and counts how often the permuted mean difference is at least
  as extreme as the observed one; ``p = (count + 1) / (permutations + 1)``.

Two corrections for multiple comparisons, selectable by name (:data:`CORRECTIONS`):
Bonferroni (the default, as the authors' script and the study's configuration schema) and Holm's
step-down method.

Per-query scores are plain dicts ``{qid: score}`` (one metric of one evaluation), as in the
``per_query`` section of an evaluation JSON. Every result is a JSON-serialisable dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from sbmoe.evaluation.results import place_untrained

TESTS = ("t-test", "randomization")
CORRECTIONS = ("bonferroni", "holm")
DEFAULT_PERMUTATIONS = 10_000

# Permuted means are computed this many sign flips at a time (bounds memory on large query sets).
_FLIPS_PER_CHUNK = 4_000_000

PerQuery = Mapping[str, float]


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the paired t-test of ``a`` against ``b``; 1.0 when they are identical."""
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if not differences.any():
        return 1.0
    return float(stats.ttest_rel(a, b).pvalue)


def randomization_test(
    a: Sequence[float], b: Sequence[float], permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0
) -> float:
    """Two-sided p-value of Fisher's paired randomization (sign-flip) test of ``a`` against ``b``.

    The same ``seed`` always gives the same p-value. Identical inputs give p = 1.
    """
    if permutations < 1:
        raise ValueError(f"permutations must be positive, got {permutations}")
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if differences.size == 0:
        raise ValueError("no paired scores to test")
    observed = abs(differences.mean())
    # Tolerance so that permutations equal to the observed mean up to rounding count as extreme.
    threshold = observed - 1e-12 * max(1.0, observed)
    rng = np.random.default_rng(seed)
    chunk = max(1, _FLIPS_PER_CHUNK // differences.size)
    extreme = 0
    for start in range(0, permutations, chunk):
        size = min(chunk, permutations - start)
        signs = rng.integers(0, 2, size=(size, differences.size), dtype=np.int8) * 2 - 1
        permuted = np.abs(signs @ differences) / differences.size
        extreme += int(np.count_nonzero(permuted >= threshold))
    return (extreme + 1) / (permutations + 1)


def paired_test(
    a: Sequence[float],
    b: Sequence[float],
    test: str = "randomization",
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
) -> float:
    """Two-sided p-value of the paired test named ``test`` (one of :data:`TESTS`)."""
    if test == "t-test":
        return paired_t_test(a, b)
    if test == "randomization":
        return randomization_test(a, b, permutations=permutations, seed=seed)
    raise ValueError(f"unknown test {test!r}; choose one of {TESTS}")


def bonferroni(p_values: Sequence[float]) -> list[float]:
    """Bonferroni-corrected p-values: each multiplied by the family size, capped at 1."""
    family = len(p_values)
    return [min(1.0, p * family) for p in p_values]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down corrected p-values (monotone, capped at 1), in the input order."""
    family = len(p_values)
    corrected = [0.0] * family
    running = 0.0
    for rank, index in enumerate(sorted(range(family), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (family - rank) * p_values[index]))
        corrected[index] = running
    return corrected


def correct(p_values: Sequence[float], method: str = "bonferroni") -> list[float]:
    """Corrected p-values by the method named ``method`` (one of :data:`CORRECTIONS`)."""
    if method == "bonferroni":
        return bonferroni(p_values)
    if method == "holm":
        return holm(p_values)
    raise ValueError(f"unknown correction {method!r}; choose one of {CORRECTIONS}")


def average_over_seeds(per_seed: Sequence[PerQuery]) -> dict[str, float]:
    """Per-query scores averaged over seeds, on the queries every seed evaluated."""
    if not per_seed:
        raise ValueError("no per-query scores to average")
    common = set(per_seed[0]).intersection(*per_seed[1:])
    return {qid: float(np.mean([scores[qid] for scores in per_seed])) for qid in sorted(common)}


def seed_statistics(values: Sequence[float]) -> dict:
    """Mean and sample standard deviation (ddof = 1; 0 for one seed) of a metric across seeds."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("no values to summarise")
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return {"mean": float(values.mean()), "std": std, "seeds": int(values.size)}


def compare_to_baseline(
    baseline: PerQuery,
    systems: Mapping[str, PerQuery],
    test: str = "randomization",
    correction: str = "bonferroni",
    alpha: float = 0.01,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
) -> dict:
    """Test every system against the baseline on one dataset and one metric.

    ``baseline`` and each value of ``systems`` map query ids to per-query scores; each system is
    paired with the baseline over the queries both evaluated. The correction family is the set of
    systems compared against this baseline on this dataset and metric, so the family size is
    ``len(systems)``. Returns ``{"test", "correction", "alpha", "family_size", "systems":
    {name: {"num_queries", "mean_difference", "p_value", "p_corrected", "significant"}}}``,
    where ``significant`` means corrected p < ``alpha``.
    """
    names = list(systems)
    raw, details = [], {}
    for name in names:
        common = sorted(set(baseline) & set(systems[name]))
        if not common:
            raise ValueError(f"system {name!r} shares no query with the baseline")
        a = [systems[name][qid] for qid in common]
        b = [baseline[qid] for qid in common]
        raw.append(paired_test(a, b, test=test, permutations=permutations, seed=seed))
        details[name] = {"num_queries": len(common), "mean_difference": float(np.mean(a) - np.mean(b))}
    corrected = correct(raw, correction) if names else []
    for name, p_value, p_corrected in zip(names, raw, corrected):
        details[name].update(p_value=p_value, p_corrected=p_corrected, significant=bool(p_corrected < alpha))
    return {
        "test": test,
        "correction": correction,
        "alpha": alpha,
        "permutations": permutations if test == "randomization" else None,
        "family_size": len(names),
        "systems": details,
    }


def significance_report(
    results,
    metrics: Sequence[str],
    baseline: str = "finetune",
    test: str = "randomization",
    correction: str = "bonferroni",
    alpha: float = 0.01,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
) -> dict:
    """Every system against the ``baseline`` system of the same encoder, training set and test set.

    ``results`` is the DataFrame of :func:`sbmoe.evaluation.results.load_results`. Per-query scores are
    averaged over seeds before testing; means and standard deviations are taken across seeds.
    The correction family is the set of systems (system id and pooling) compared against the
    baseline on one test set and one metric, for one encoder and training set; the untrained
    encoder (``zeroshot``) joins the family of every training set. Returns the
    settings and a list ``comparisons`` of flat JSON-serialisable records.
    """
    comparisons = []
    grouped = place_untrained(results).groupby(["encoder", "trainset", "testset"], sort=False)
    for (encoder, trainset, testset), frame in grouped:
        is_baseline = frame["system"] == baseline
        if not is_baseline.any():
            continue
        reference = frame[is_baseline]
        others = dict(list(frame[~is_baseline].groupby(["system", "pooling"], sort=False)))
        for metric in metrics:
            if metric not in frame or any(metric not in per_query for per_query in frame["per_query"]):
                continue
            reference_stats = seed_statistics(reference[metric])
            family = compare_to_baseline(
                average_over_seeds([pq[metric] for pq in reference["per_query"]]),
                {name: average_over_seeds([pq[metric] for pq in group["per_query"]]) for name, group in others.items()},
                test=test,
                correction=correction,
                alpha=alpha,
                permutations=permutations,
                seed=seed,
            )
            for (system, pooling), outcome in family["systems"].items():
                system_stats = seed_statistics(others[(system, pooling)][metric])
                comparisons.append(
                    {
                        "encoder": encoder,
                        "trainset": trainset,
                        "testset": testset,
                        "metric": metric,
                        "system": system,
                        "pooling": pooling,
                        "baseline": baseline,
                        "mean": system_stats["mean"],
                        "std": system_stats["std"],
                        "seeds": system_stats["seeds"],
                        "baseline_mean": reference_stats["mean"],
                        "baseline_std": reference_stats["std"],
                        "baseline_seeds": reference_stats["seeds"],
                        "family_size": family["family_size"],
                        **outcome,
                    }
                )
    return {
        "baseline": baseline,
        "test": test,
        "correction": correction,
        "alpha": alpha,
        "permutations": permutations if test == "randomization" else None,
        "seed": seed,
        "family": "the systems compared against the baseline on one test set and one metric "
        "(same encoder and training set)",
        "comparisons": comparisons,
    }
