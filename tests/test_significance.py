"""Paired tests, multiple-comparison corrections and the significance report."""

import json

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from sbmoe.evaluation.results import load_results
from sbmoe.evaluation.significance import (
    average_over_seeds,
    bonferroni,
    compare_to_baseline,
    correct,
    holm,
    paired_test,
    randomization_test,
    seed_statistics,
    significance_report,
)


def _scores(seed=0, size=200):
    return np.random.default_rng(seed).uniform(0, 1, size)


@pytest.mark.parametrize("test", ["t-test", "randomization"])
def test_identical_runs_give_p_one(test):
    scores = _scores()
    assert paired_test(scores, scores, test=test) == 1.0


@pytest.mark.parametrize("test", ["t-test", "randomization"])
def test_constant_shift_with_noise_is_significant(test):
    baseline = _scores()
    shifted = baseline + 0.05 + np.random.default_rng(1).normal(0, 0.02, baseline.size)
    assert paired_test(shifted, baseline, test=test) < 0.001


def test_randomization_p_value_is_bounded_by_permutations():
    baseline = _scores()
    p = randomization_test(baseline + 0.1, baseline, permutations=10_000)
    assert p == pytest.approx(1 / 10_001)


def test_randomization_test_is_repeatable_with_a_seed():
    a, b = _scores(0), _scores(1)
    first = randomization_test(a, b, permutations=10_000, seed=7)
    assert randomization_test(a, b, permutations=10_000, seed=7) == first
    assert 0.0 < first <= 1.0


def test_randomization_agrees_with_t_test_on_large_samples():
    a = _scores(3, 500)
    b = a + np.random.default_rng(4).normal(0.01, 0.1, a.size)
    assert randomization_test(a, b, permutations=20_000) == pytest.approx(paired_test(a, b, "t-test"), abs=0.02)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown test"):
        paired_test([1.0], [0.0], test="wilcoxon")
    with pytest.raises(ValueError, match="unknown correction"):
        correct([0.1], "fdr")


@pytest.mark.parametrize("method,ours", [("bonferroni", bonferroni), ("holm", holm)])
def test_corrections_equal_statsmodels(method, ours):
    p_values = [0.001, 0.04, 0.03, 0.2, 0.0125, 0.5, 0.01]
    expected = multipletests(p_values, method=method)[1]
    np.testing.assert_allclose(ours(p_values), expected)
    np.testing.assert_allclose(correct(p_values, method), expected)


def test_compare_to_baseline_reports_family_and_common_queries():
    baseline = {f"q{i}": float(v) for i, v in enumerate(_scores())}
    better = {qid: score + 0.1 for qid, score in baseline.items()}
    same = dict(list(baseline.items())[:150])
    result = compare_to_baseline(baseline, {"better": better, "same": same}, correction="bonferroni", alpha=0.01)
    assert result["family_size"] == 2
    assert result["systems"]["same"]["num_queries"] == 150
    assert result["systems"]["same"]["p_value"] == 1.0
    assert result["systems"]["better"]["significant"] is True
    assert result["systems"]["better"]["p_corrected"] == pytest.approx(2 * result["systems"]["better"]["p_value"])
    json.dumps(result)


def test_seed_helpers():
    assert average_over_seeds([{"a": 1.0, "b": 0.0}, {"a": 0.0, "c": 1.0}]) == {"a": 0.5}
    summary = seed_statistics([0.2, 0.4])
    assert summary["mean"] == pytest.approx(0.3)
    assert summary["std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert seed_statistics([0.2])["std"] == 0.0


def _write_eval(path, per_query):
    scores = list(per_query.values())
    evaluation = {
        "metrics": {"ndcg@10": float(np.mean(scores))},
        "per_query": {"ndcg@10": per_query},
        "relevance_threshold": 1,
        "num_queries": len(per_query),
    }
    path.write_text(json.dumps(evaluation))
    return path


def test_report_averages_seeds_and_tests_against_ft(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 0.8, 100)
    records = []
    for system, pooling, shift in [
        ("finetune", "none", 0.0),
        ("sbmoe-paper-e6", "top1", 0.1),
        ("random-gate-e6", "top1", 0.0),
    ]:
        for seed in (1, 2):
            noise = rng.normal(0, 0.01, base.size) if shift else np.zeros(base.size)
            per_query = {f"q{i}": float(v) for i, v in enumerate(base + shift + noise)}
            keys = dict(
                encoder="tiny", trainset="msmarco", system=system, seed=seed, testset="msmarco", pooling=pooling
            )
            records.append((keys, _write_eval(tmp_path / f"{system}-{seed}.json", per_query)))
    report = significance_report(load_results(records), metrics=["ndcg@10"], permutations=2000)
    by_system = {c["system"]: c for c in report["comparisons"]}
    assert set(by_system) == {"sbmoe-paper-e6", "random-gate-e6"}
    assert by_system["sbmoe-paper-e6"]["significant"] and by_system["sbmoe-paper-e6"]["seeds"] == 2
    assert by_system["random-gate-e6"]["p_value"] == 1.0
    assert all(c["family_size"] == 2 for c in report["comparisons"])
    json.dumps(report)
