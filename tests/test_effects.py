"""Effect statistics of paired per-query differences (sbmoe.evaluation.effects) and the reproduction
measures of Breuer et al. (sbmoe.analysis.claims.reproduction)."""

import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

from sbmoe.analysis.claims.reproduction import (
    delta_relative_improvement,
    effect_ratio,
    reproduction_measures,
)
from sbmoe.evaluation.effects import bootstrap_interval, minimal_detectable_effect, tost


def test_bootstrap_interval_covers_the_true_mean_at_about_its_nominal_rate():
    true_mean, covered = 0.03, 0
    rng = np.random.default_rng(7)
    for replication in range(200):
        differences = rng.normal(true_mean, 0.1, size=60)
        # 2,000 resamples keep this test fast; the study draws 10,000
        low, high = bootstrap_interval(differences, resamples=2000, confidence=0.95, seed=replication)
        covered += low <= true_mean <= high
    assert 0.9 <= covered / 200 <= 0.99


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    differences = np.random.default_rng(1).normal(0.02, 0.1, size=50)
    first = bootstrap_interval(differences, resamples=10_000, seed=3)
    assert first == bootstrap_interval(differences, resamples=10_000, seed=3)
    assert first != bootstrap_interval(differences, resamples=10_000, seed=4)
    assert first[0] < differences.mean() < first[1]
    assert bootstrap_interval([0.0] * 20, resamples=100) == (0.0, 0.0)


def test_bootstrap_interval_rejects_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_interval([])
    with pytest.raises(ValueError, match="finite"):
        bootstrap_interval([0.1, math.nan])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_interval([0.1, 0.2], confidence=95)


@pytest.mark.parametrize("shift", [0.0, 0.004, 0.03])
def test_tost_agrees_with_statsmodels(shift):
    rng = np.random.default_rng(11)
    b = rng.uniform(0.2, 0.8, size=80)
    a = b + shift + rng.normal(0, 0.02, size=80)
    expected = ttost_paired(a, b, -0.01, 0.01)[0]
    assert tost(a - b, 0.01) == pytest.approx(expected, rel=1e-9)


def test_tost_without_spread():
    assert tost([0.0] * 10, 0.01) == 0.0  # identical systems are equivalent
    assert tost([0.02] * 10, 0.01) == 1.0  # a constant difference beyond the margin is not
    with pytest.raises(ValueError, match="margin"):
        tost([0.1, 0.2], 0.0)


@pytest.mark.parametrize("queries", [20, 300])
def test_minimal_detectable_effect_is_close_to_the_exact_power_analysis(queries):
    differences = np.random.default_rng(5).normal(0.0, 0.1, size=queries)
    spread = differences.std(ddof=1)
    # the exact effect size for a one-sample t-test (noncentral t), in units of the spread
    exact = TTestPower().solve_power(nobs=queries, alpha=0.01, power=0.8, alternative="two-sided") * spread
    assert minimal_detectable_effect(differences, alpha=0.01, power=0.8) == pytest.approx(exact, rel=0.03)
    assert math.isinf(minimal_detectable_effect([0.1], alpha=0.01))
    assert minimal_detectable_effect([0.0] * 5, alpha=0.01) == 0.0


# ---- Effect Ratio and Delta RI, against values computed by hand for two published settings ----
# MS MARCO, nDCG@10, E=3: paper FT .244, SB-MoE .251 (improvement .007, relative .007/.244).
# DL19, nDCG@10, E=6: paper FT .439, SB-MoE .438 (improvement -.001, relative -.001/.439).


def test_effect_ratio_and_delta_ri_by_hand():
    # ours .300 -> .310: improvement .010; ER = .010 / .007; RI = .010 / .300
    assert effect_ratio(0.244, 0.251, 0.300, 0.310) == pytest.approx(1.4285714, abs=1e-6)
    assert delta_relative_improvement(0.244, 0.251, 0.300, 0.310) == pytest.approx(0.0286885 - 0.0333333, abs=1e-6)
    # ours .420 -> .425: improvement .005; ER = .005 / -.001 = -5; RI_ours = .005 / .420
    assert effect_ratio(0.439, 0.438, 0.420, 0.425) == pytest.approx(-5.0, abs=1e-6)
    assert delta_relative_improvement(0.439, 0.438, 0.420, 0.425) == pytest.approx(-0.0022779 - 0.0119048, abs=1e-6)


def test_effect_ratio_is_undefined_without_a_published_improvement():
    assert math.isnan(effect_ratio(0.25, 0.25, 0.3, 0.31))
    assert math.isnan(delta_relative_improvement(0.0, 0.25, 0.3, 0.31))


def test_reproduction_measures_match_published_datasets_by_name():
    reference = {
        "configurations": ["FT", 3, 6],
        "metrics": {"ndcg@10": {"MSMARCO": [0.244, 0.251, 0.246], "NQ": [0.261, 0.268, 0.271]}},
    }
    rows = [
        {
            "encoder": "tinybert",
            "trainset": "msmarco",
            "testset": "msmarco",
            "system": system,
            "pooling": pooling,
            "seed": seed,
            "ndcg@10": value + 0.002 * seed,
        }
        for system, pooling, value in (("finetune", "none", 0.300), ("sbmoe-paper-e3", "top1", 0.310))
        for seed in (0, 1)
    ]
    records = reproduction_measures(
        pd.DataFrame(rows),
        reference,
        [("msmarco", "msmarco")],
        encoder="tinybert",
        dataset_labels={"msmarco": "MS MARCO"},
    )
    assert len(records) == 1  # NQ was not run, nor E=6
    record = records[0]
    assert (record["dataset"], record["experts"], record["metric"]) == ("MSMARCO", 3, "ndcg@10")
    assert record["ours_ft"] == pytest.approx(0.301) and record["ours_moe"] == pytest.approx(0.311)
    assert record["difference_ft"] == pytest.approx(0.301 - 0.244)
    assert record["effect_ratio"] == pytest.approx(0.010 / 0.007)
