"""Claim-by-claim verdicts: the claims file, the verdict rule on synthetic per-query scores with known
effects, the evidence's sources, and the report generated from the verdicts' JSON."""

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sbmoe.analysis.claims.markdown import verdicts_markdown
from sbmoe.analysis.claims.report import (
    abstract_sentences,
    json_ready,
    overview,
    p_text,
    plain,
    quantity,
    signed,
    verdict_rows,
    verdicts_section,
)
from sbmoe.analysis.claims.verdicts import Scores, Study, decide, load_claims, study_verdicts
from sbmoe.evaluation.results import load_results
from sbmoe.evaluation.significance import significance_report
from sbmoe.io.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = ROOT / "workflow" / "claims.yaml"
SIGNIFICANCE = {"test": "randomization", "correction": "bonferroni", "alpha": 0.01, "permutations": 1000, "seed": 0}
MINILM = "embedded:all-MiniLM-L6-v2"
METRICS = ("ndcg@10", "recall@100")


def evaluations(systems, queries, encoder="minilm", trainset="scifact", testset="scifact", seeds=(1, 2), seed=0):
    """Rows as sbmoe.evaluation.results.load_results gives them: FT's per-query scores, and every
    other system's as FT's plus ``shift`` plus Gaussian noise of spread ``noise`` (per seed)."""
    rng = np.random.default_rng(seed)
    qids = [f"q{i}" for i in range(queries)]
    rows = []
    for run in seeds:
        base = {metric: rng.uniform(0.2, 0.8, size=queries) for metric in METRICS}
        for (system, pooling), (shift, noise) in systems.items():
            scores = {
                metric: dict(zip(qids, (base[metric] + shift + rng.normal(0, noise, queries) * (noise > 0)).tolist()))
                for metric in METRICS
            }
            rows.append(
                {
                    "encoder": encoder,
                    "trainset": trainset,
                    "testset": testset,
                    "system": system,
                    "pooling": pooling,
                    "seed": run,
                    "per_query": scores,
                }
            )
    return pd.DataFrame(rows)


def claims_only(*ids):
    claims = load_claims(CLAIMS)
    claims["claims"] = [claim for claim in claims["claims"] if claim["id"] in ids]
    return claims


def minilm_study(**extra):
    return Study({"minilm": MINILM}, {"scifact": ["scifact"]}, {"scifact": ["cranfield"]}, SIGNIFICANCE, **extra)


def only_setting(report):
    (claim,) = report["claims"]
    (setting,) = claim["settings"]
    return claim, setting


# ---------------------------------------------------------------------------------------------
# The rule on synthetic scores with known effects


@pytest.mark.parametrize(
    ("shift", "noise", "queries", "expected"),
    [
        (0.05, 0.1, 300, "supported"),  # a true gain of 0.05 on 300 queries
        (0.0, 0.0, 300, "equivalent"),  # identical systems
        (0.001, 0.1, 20, "inconclusive"),  # a true gain of 0.001, buried in per-query noise, on 20 queries
        (-0.05, 0.1, 300, "contradicted"),  # a true loss of 0.05
    ],
)
def test_verdict_of_a_known_effect(shift, noise, queries, expected):
    results = evaluations({("finetune", "none"): (0.0, 0.0), ("sbmoe-paper-e6", "top1"): (shift, noise)}, queries)
    report = study_verdicts(claims_only("light-beats-ft"), minilm_study(), Scores(results))
    claim, setting = only_setting(report)
    evidence = setting["metrics"]["ndcg@10"]
    assert setting["verdict"] == expected == evidence["verdict"]
    assert evidence["num_queries"] == queries
    assert evidence["ci_low"] <= evidence["difference"] <= evidence["ci_high"]
    assert evidence["difference"] == pytest.approx(evidence["mean_a"] - evidence["mean_b"])
    assert evidence["family"].startswith("computed: randomization")  # no significance report given
    if expected == "inconclusive":
        assert evidence["mde"] > claim["delta"] and evidence["ci_high"] - evidence["ci_low"] > claim["delta"]
        assert evidence["reason"].startswith("too few queries")
    if expected == "supported":
        assert claim["summary"] == "holds" and evidence["ci_low"] > 0
    assert setting["reproduction"] is False  # MiniLM on SciFact is not the paper's setting


def test_decide_is_one_rule_for_every_relation():
    assert decide(">", 0.05, 0.001, 0.9, 0.01) == "supported"
    assert decide(">", -0.05, 0.001, 0.9, 0.01) == "contradicted"
    assert decide(">", 0.003, 0.001, 0.001, 0.01) == "equivalent"  # significant but negligible
    assert decide("!=", -0.05, 0.001, 0.9, 0.01) == "supported"
    assert decide("~", 0.05, 0.001, 0.9, 0.01) == "contradicted"
    assert decide("~", 0.0, 0.9, 0.001, 0.01) == "equivalent"
    assert decide("~", 0.0, 0.9, 0.2, 0.01) == "inconclusive"


def test_an_equivalence_claim_holds_when_the_systems_are_equivalent():
    study = Study({"contriever": "facebook/contriever"}, {"political-science": ["political-science"]}, {}, SIGNIFICANCE)
    for shift, noise, verdict, summary in (
        (0.0, 0.0, "equivalent", "holds"),
        (0.08, 0.05, "contradicted", "does not hold"),
    ):
        results = evaluations(
            {("finetune", "none"): (0, 0), ("sbmoe-paper-e6", "top1"): (shift, noise)},
            200,
            encoder="contriever",
            trainset="political-science",
            testset="political-science",
        )
        claim, setting = only_setting(study_verdicts(claims_only("heavy-needs-data"), study, Scores(results)))
        assert (setting["verdict"], claim["summary"]) == (verdict, summary)
        assert setting["reproduction"] is True  # Contriever on Political Science is the paper's


def test_claims_outside_the_configuration_are_not_tested_here():
    results = evaluations({("finetune", "none"): (0, 0), ("sbmoe-paper-e6", "top1"): (0.05, 0.1)}, 50)
    report = study_verdicts(
        claims_only("heavy-gains-with-data", "router-beats-best-single"), minilm_study(), Scores(results)
    )
    assert [claim["summary"] for claim in report["claims"]] == ["not tested here"] * 2
    rows = verdict_rows(report)
    assert list(rows["verdict"]) == ["not tested here"] * 2
    assert rows["reason"].iloc[0].startswith("tested by config.yaml")


def test_the_significance_report_gives_the_p_value_where_it_holds_the_comparison():
    results = evaluations({("finetune", "none"): (0, 0), ("sbmoe-paper-e6", "top1"): (0.05, 0.1)}, 300)
    comparison = {
        "encoder": "minilm",
        "trainset": "scifact",
        "testset": "scifact",
        "system": "sbmoe-paper-e6",
        "pooling": "top1",
        "family_size": 4,
        "p_corrected": 0.2,
    }
    report = {"comparisons": [{**comparison, "metric": metric} for metric in METRICS]}
    _, setting = only_setting(
        study_verdicts(claims_only("light-beats-ft"), minilm_study(), Scores(results), significance=report)
    )
    evidence = setting["metrics"]["ndcg@10"]
    assert evidence["p_value"] == 0.2 and evidence["family_size"] == 4
    assert evidence["family"].startswith("significance.json")
    assert setting["verdict"] == "inconclusive"  # the report's corrected p-value decides, not a new test


def test_first_experts_the_study_ran_and_every_one_of_a_sweep():
    systems = {
        ("finetune", "none"): (0, 0),
        ("sbmoe-paper-e3", "top1"): (0.0, 0.05),
        ("sbmoe-paper-e9", "top1"): (0.06, 0.05),
        ("random-gate-e3", "top1"): (0.0, 0.05),
    }
    results = evaluations(systems, 200)
    report = study_verdicts(claims_only("gate-matters", "expert-count"), minilm_study(), Scores(results))
    by_id = {claim["id"]: claim for claim in report["claims"]}
    (gate,) = by_id["gate-matters"]["settings"]
    assert (gate["a"], gate["b"], gate["experts"]) == (["sbmoe-paper-e3", "top1"], ["random-gate-e3", "top1"], 3)
    (sweep,) = by_id["expert-count"]["settings"]  # E=9 against E=3; E=6 and 12 were not run
    assert sweep["a"][0] == "sbmoe-paper-e9" and sweep["verdict"] == "supported"


def write_log(path, norms):
    lines = [
        {"epoch": epoch, "loss": 1.0, "val_loss": 1.0, "gate_grad_norm": norm} for epoch, norm in enumerate(norms, 1)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.mark.parametrize(("paper_norms", "verdict"), [([0.0, 0.0, 3e-8], "supported"), ([0.0, 0.02], "contradicted")])
def test_gate_gradient_claim_reads_the_training_logs(tmp_path, paper_norms, verdict):
    keys = {"encoder": "minilm", "trainset": "scifact", "seed": 1}
    logs = [
        ({**keys, "system": "sbmoe-paper-e6"}, write_log(tmp_path / "paper.jsonl", paper_norms)),
        ({**keys, "system": "sbmoe-learned-e6"}, write_log(tmp_path / "learned.jsonl", [0.1, 0.3])),
        ({**keys, "system": "finetune"}, write_log(tmp_path / "ft.jsonl", [None, None])),
    ]
    _, setting = only_setting(
        study_verdicts(claims_only("gate-no-gradient"), minilm_study(), Scores(pd.DataFrame()), logs=logs)
    )
    assert setting["verdict"] == verdict
    assert setting["gate_gradient"]["largest"] == max(paper_norms)
    assert setting["gate_gradient"]["control_mean"] == pytest.approx(0.2)


def routing_evaluations(queries=120):
    rng = np.random.default_rng(3)
    qids = [f"q{i}" for i in range(queries)]
    shifts = {"bm25": 0.0, "zeroshot": 0.03, "rrf": 0.04, "wsum": 0.02, "router-hard": 0.1, "router-soft": 0.035}
    base = rng.uniform(0.2, 0.7, size=queries)
    systems = {}
    for name, shift in shifts.items():
        scores = base + shift + rng.normal(0, 0.05, queries)
        per_query = {metric: dict(zip(qids, scores.tolist())) for metric in METRICS}
        systems[name] = {"metrics": {metric: float(scores.mean()) for metric in METRICS}, "per_query": per_query}
    return {"scifact": {"scifact": systems}}


def test_routing_claims_compare_with_the_best_single_retriever_and_the_best_fusion():
    report = study_verdicts(
        claims_only("router-beats-best-single", "router-beats-fusion"),
        minilm_study(routing_encoder="minilm"),
        Scores(pd.DataFrame()),
        routing=routing_evaluations(),
        routing_experts=["bm25", "zeroshot"],
    )
    single, fusion = report["claims"]
    assert [s["b"][0] for s in single["settings"]] == ["zeroshot", "zeroshot"]
    assert [s["b"][0] for s in fusion["settings"]] == ["rrf", "rrf"]
    hard = single["settings"][0]
    assert (hard["a"][0], hard["verdict"], hard["b_label"]) == ("router-hard", "supported", "best single (Zero-shot)")
    assert hard["metrics"]["ndcg@10"]["family"].startswith("computed")


def test_routing_significance_gives_the_p_value_against_the_best_single_retriever():
    tested = {
        "trainset": "scifact",
        "testset": "scifact",
        "metric": "ndcg@10",
        "system": "router-hard",
        "baseline": "zeroshot",
        "family_size": 4,
        "p_corrected": 0.3,
    }
    report = study_verdicts(
        claims_only("router-beats-best-single"),
        minilm_study(routing_encoder="minilm"),
        Scores(pd.DataFrame()),
        routing=routing_evaluations(),
        routing_experts=["bm25", "zeroshot"],
        routing_significance={"comparisons": [tested]},
    )
    hard = report["claims"][0]["settings"][0]["metrics"]["ndcg@10"]
    assert (hard["p_value"], hard["family_size"], hard["verdict"]) == (0.3, 4, "inconclusive")
    assert hard["family"].startswith("routing_significance.json")


# ---------------------------------------------------------------------------------------------
# The claims file


def test_the_claims_file_is_valid_and_names_the_papers_claims():
    claims = load_claims(CLAIMS)
    ids = [claim["id"] for claim in claims["claims"]]
    for wanted in (
        "light-beats-ft",
        "heavy-needs-data",
        "zero-shot",
        "expert-count",
        "gate-matters",
        "gate-no-gradient",
        "router-beats-best-single",
        "router-beats-fusion",
    ):
        assert wanted in ids
    assert claims["defaults"]["delta"] == 0.01 and claims["defaults"]["metrics"][0] == "ndcg@10"


def write_claims(tmp_path, change):
    claims = yaml.safe_load(CLAIMS.read_text())
    change(claims)
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(claims))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["claims"][2].update(relation=">>"), "claim 'heavy-gains-with-data', key 'relation'"),
        (lambda c: c["claims"][0]["scope"].update(encoders="medium"), "claim 'light-beats-ft', key 'scope.encoders'"),
        (lambda c: c["claims"][1].pop("tested_by"), "claim 'heavy-needs-data', key '(the claim itself)': 'tested_by'"),
        (lambda c: c["defaults"].update(resamples=100), "key 'defaults.resamples'"),
        (lambda c: c["claims"].append(copy.deepcopy(c["claims"][0])), "repeated: ['light-beats-ft']"),
        (lambda c: c["claims"][0].update(relation="="), "claim 'light-beats-ft', key 'relation': '=' goes with"),
    ],
)
def test_a_bad_claims_file_names_the_claim_and_the_key(tmp_path, change, message):
    path = write_claims(tmp_path, change)
    with pytest.raises(InputError) as error:
        load_claims(path)
    assert str(error.value).startswith(str(path)) and message in str(error.value)


# ---------------------------------------------------------------------------------------------
# The report: every number of the LaTeX comes from the JSON


def full_report():
    systems = {
        ("finetune", "none"): (0, 0),
        ("sbmoe-paper-e6", "top1"): (0.04, 0.1),
        ("sbmoe-paper-e3", "top1"): (0.0, 0.1),
        ("random-gate-e6", "top1"): (0.0, 0.0),
    }
    results = pd.concat([evaluations(systems, 150), evaluations(systems, 40, testset="cranfield", seed=1)])
    report = study_verdicts(
        load_claims(CLAIMS),
        minilm_study(routing_encoder="minilm"),
        Scores(results),
        routing=routing_evaluations(),
        routing_experts=["bm25", "zeroshot"],
    )
    report["reproduction"] = [
        {
            "dataset": "MSMARCO",
            "testset": "msmarco",
            "experts": 3,
            "metric": "ndcg@10",
            "paper_ft": 0.244,
            "paper_moe": 0.251,
            "ours_ft": 0.3012,
            "ours_moe": 0.3127,
            "difference_ft": 0.0572,
            "difference_moe": 0.0617,
            "effect_ratio": 1.642857,
            "delta_ri": -0.00949,
        }
    ]
    report["overview"] = overview(report)
    return json.loads(json.dumps(json_ready(report)))  # as the rule writes and the paper reads it


def formatted_numbers(value, found):
    """Every number of the JSON, in every format the report prints numbers in."""
    if isinstance(value, dict):
        for item in value.values():
            formatted_numbers(item, found)
    elif isinstance(value, list):
        for item in value:
            formatted_numbers(item, found)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        found |= {signed(value), plain(value), p_text(value), quantity(value), str(value), f"{value:g}"}
    elif isinstance(value, str):
        found |= set(re.findall(r"\d+(?:\.\d+)?", value))
    return found


def test_every_number_of_the_verdicts_section_comes_from_the_json():
    report = full_report()
    labels = {"scifact": "SciFact", "cranfield": "Cranfield"}
    section = verdicts_section(report, report["reproduction"], labels)
    allowed = formatted_numbers(report, set())
    layout = re.sub(r"\d+(?:\.\d+)?(?:cm|pt)\b", "", section)  # column widths and spacing are not results
    numbers = re.findall(r"(?:\$-\$|[+-])?\d+\.\d+", layout)
    assert numbers and all(number in allowed for number in numbers), sorted(set(numbers) - allowed)
    for claim_number, claim in enumerate(report["claims"], start=1):
        rows = [line for line in section.splitlines() if line.startswith(f"C{claim_number} &")]
        assert len(rows) == max(1, len(claim["settings"]))
        for row, setting in zip(rows, claim["settings"]):
            assert setting["verdict"] in row
            if "metrics" in setting:
                evidence = setting["metrics"]["ndcg@10"]
                assert (
                    f"{signed(evidence['difference'])} [{signed(evidence['ci_low'])}, {signed(evidence['ci_high'])}]"
                    in row
                )
                assert p_text(evidence["p_value"]) in row
    assert plain(report["reproduction"][0]["effect_ratio"]) in section


def test_the_abstract_sentences_state_the_jsons_verdicts():
    report = full_report()
    labels = {"scifact": "SciFact", "cranfield": "Cranfield"}
    text = abstract_sentences(report, labels)
    counts = report["overview"]
    assert f"Of the paper's {counts['claims']} claims, this configuration tests {counts['tested']} in" in text
    holds = f"{counts['holds']} {'holds' if counts['holds'] == 1 else 'hold'} in every setting"
    assert holds in text
    assert f"Not tested by this configuration ({counts['not tested here']} claims)" in text
    for claim in report["claims"]:
        settings = claim["settings"]
        if len(settings) == 1:
            evidence = settings[0]["metrics"]["ndcg@10"]
            assert f"{settings[0]['verdict']} in its one setting" in text
            assert (
                f"{signed(evidence['difference'])} [{signed(evidence['ci_low'])}, {signed(evidence['ci_high'])}]"
                in text
            )
        elif settings:
            parts = [f"{verdict} in {n}" for verdict, n in claim["counts"].items() if n]
            assert f"{parts[-1]} of {len(settings)} settings" in text
    decimals = re.findall(r"(?:\$-\$|\+)?\d+\.\d+", text)
    allowed = formatted_numbers(report, set())
    assert decimals and set(decimals) <= allowed, set(decimals) - allowed
    integers = {int(n) for n in re.findall(r"\b\d+\b", re.sub(r"\d+\.\d+", "", text))}
    assert integers <= {int(n) for n in allowed if re.fullmatch(r"\d+", n)}


def test_the_abstract_has_no_plural_placeholder_and_the_tables_no_tiny_type():
    report = full_report()
    generated = abstract_sentences(report) + verdicts_section(report, report["reproduction"])
    assert "(s)" not in generated and "comparisons with FT are significant" not in generated
    assert "\\scriptsize" not in generated and "\\tiny" not in generated
    assert " 1 settings" not in generated and " 1 claims" not in generated


@pytest.mark.skipif(shutil.which("latexmk") is None, reason="latexmk is not installed (make tex)")
def test_the_verdicts_section_compiles(tmp_path):
    report = full_report()
    (tmp_path / "verdicts.tex").write_text(verdicts_section(report, report["reproduction"]))
    (tmp_path / "abstract.tex").write_text(abstract_sentences(report))
    (tmp_path / "main.tex").write_text(
        "\\documentclass{article}\\usepackage[T1]{fontenc}\\usepackage{amsmath,array,booktabs,longtable}\n"
        "\\begin{document}\\begin{abstract}\\input{abstract.tex}\\end{abstract}\\input{verdicts.tex}\\end{document}\n"
    )
    completed = subprocess.run(
        ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:]


# ---------------------------------------------------------------------------------------------
# The Snakemake script, run as Snakemake runs it (a fresh interpreter with a `snakemake` object)

RUNNER = """
import json, runpy, sys
from types import SimpleNamespace
spec = json.loads(sys.argv[2])
smk = SimpleNamespace(**{k: SimpleNamespace(**v) if isinstance(v, dict) else v for k, v in spec.items()})
runpy.run_path(sys.argv[1], init_globals={"snakemake": smk}, run_name="__main__")
"""


def write_evaluations(folder):
    """Evaluation JSONs as the evaluate rule writes them ({testset: {pooling: evaluation}}), with their keys."""
    frame = evaluations({("finetune", "none"): (0, 0), ("sbmoe-paper-e6", "top1"): (0.05, 0.1)}, 120)
    records = []
    for row in frame.itertuples():
        path = folder / f"{row.system}-seed{row.seed}.json"
        evaluation = {
            "metrics": {m: float(np.mean(list(row.per_query[m].values()))) for m in METRICS},
            "per_query": row.per_query,
            "num_queries": 120,
        }
        path.write_text(json.dumps({"scifact": {row.pooling: evaluation}}))
        keys = {
            "encoder": "minilm",
            "trainset": "scifact",
            "system": row.system,
            "seed": row.seed,
            "testset": "scifact",
            "pooling": row.pooling,
        }
        records.append((keys, str(path)))
    return records


def test_the_snakemake_script_writes_json_csv_and_latex(tmp_path):
    records = write_evaluations(tmp_path)
    significance = tmp_path / "significance.json"
    report = significance_report(
        load_results([(keys, path) for keys, path in records]),
        list(METRICS),
        permutations=1000,
        correction="bonferroni",
    )
    significance.write_text(json.dumps(report))
    log = write_log(tmp_path / "train_log.jsonl", [0.0, 0.0])
    out = tmp_path / "analysis"
    smk = {
        "input": {
            "claims": str(CLAIMS),
            "schema": str(ROOT / "workflow" / "schemas" / "claims.schema.yaml"),
            "evals": [path for _, path in records],
            "significance": str(significance),
            "reference": str(ROOT / "workflow" / "reference_numbers.yaml"),
            "logs": [str(log)],
            "routing": [],
            "routing_significance": [],
        },
        "params": {
            "eval_keys": [keys for keys, _ in records],
            "log_keys": [{"encoder": "minilm", "trainset": "scifact", "system": "sbmoe-paper-e6", "seed": 1}],
            "encoders": {"minilm": MINILM},
            "in_domain": {"scifact": ["scifact"]},
            "zero_shot": {},
            "significance": SIGNIFICANCE,
            "dataset_labels": {"scifact": "SciFact"},
            "routing_trainsets": [],
            "routing_encoder": None,
            "routing_experts": [],
            "reproduction": {"encoder": "minilm", "combination": "paper", "pooling": "top1"},
        },
        "output": {
            "json": str(out / "verdicts.json"),
            "csv": str(out / "verdicts.csv"),
            "tex": str(out / "verdicts.tex"),
            "abstract": str(out / "verdicts_abstract.tex"),
        },
        "log": [str(tmp_path / "verdicts.log")],
    }
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(ROOT / "workflow" / "scripts" / "verdicts.py"), json.dumps(smk)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr + (tmp_path / "verdicts.log").read_text()
    written = json.loads(
        (out / "verdicts.json").read_text(), parse_constant=lambda name: pytest.fail(f"{name} in the JSON")
    )
    by_id = {claim["id"]: claim for claim in written["claims"]}
    setting = by_id["light-beats-ft"]["settings"][0]
    assert setting["verdict"] == "supported"
    assert setting["metrics"]["ndcg@10"]["family"].startswith("significance.json")  # the study's family, not a new test
    assert by_id["gate-no-gradient"]["settings"][0]["verdict"] == "supported"
    assert written["reproduction"] == []  # SciFact has no published number
    rows = pd.read_csv(out / "verdicts.csv")
    assert set(rows["claim"]) == set(by_id)
    assert (out / "verdicts.tex").read_text() == verdicts_section(
        written, written["reproduction"], {"scifact": "SciFact"}
    )
    assert (out / "verdicts_abstract.tex").read_text() == abstract_sentences(written, {"scifact": "SciFact"})


def test_the_markdown_verdicts_list_every_claim_and_setting_from_the_json(tmp_path):
    report = full_report()
    path = tmp_path / "verdicts.json"
    path.write_text(json.dumps(report))
    completed = subprocess.run(
        [sys.executable, "-m", "sbmoe.pipeline.cli", "verdicts", str(path)], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    text = completed.stdout
    assert text == verdicts_markdown(report)
    for claim in report["claims"]:
        assert sum(line.startswith(f"- **{claim['summary'].capitalize()}**") for line in text.splitlines()) == 1
        assert f"`{claim['id']}` ({claim['short']})" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith(("| claim", "| ---"))]
    settings = [(claim, setting) for claim in report["claims"] for setting in claim["settings"]]
    assert len(rows) == len(settings)
    for row, (claim, setting) in zip(rows, settings):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[0] == claim["id"] and cells[-1] == setting["verdict"]
        assert cells[2] == ("reproduction" if setting["reproduction"] else "generalization")
        if "metrics" in setting:
            evidence = setting["metrics"]["ndcg@10"]
            difference, low, high = (f"{evidence[key]:+.3f}" for key in ("difference", "ci_low", "ci_high"))
            assert cells[4] == f"{difference} [{low}, {high}]"
            assert cells[6] == f"{evidence['mde']:.3f}"
        else:
            assert f"{setting['gate_gradient']['largest']:.1e}" in cells[4]


def test_the_markdown_verdicts_refuse_another_json(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"scifact": {}}))
    completed = subprocess.run(
        [sys.executable, "-m", "sbmoe.pipeline.cli", "verdicts", str(path)], capture_output=True, text=True
    )
    assert completed.returncode == 2
    assert f"{path}: no claims, metrics, defaults: not a verdicts report" in completed.stderr
