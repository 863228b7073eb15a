"""Result gathering and the paper's tables, on small synthetic evaluations written to tmp_path."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sbmoe.analysis.latex import format_score, latex_escape
from sbmoe.analysis.tables.experts import experts_table
from sbmoe.analysis.tables.in_domain import in_domain_table
from sbmoe.analysis.tables.reproduction import load_reference, reproduction_table
from sbmoe.analysis.tables.zero_shot import PANEL_WIDTH, zero_shot_table
from sbmoe.evaluation.results import (
    REPORTED_METRICS,
    aggregate_seeds,
    corpus_files,
    group_by_counts,
    load_results,
    pooling_file,
    read_evaluation,
)
from sbmoe.evaluation.significance import significance_report
from sbmoe.systems.labels import display_label, metric_label, system_order
from sbmoe.systems.names import parse_system

REFERENCE = Path(__file__).resolve().parents[1] / "workflow" / "reference_numbers.yaml"
QUERIES = 60
IN_DOMAIN = [("msmarco", "msmarco"), ("nq", "nq")]
ZERO_SHOT = ["scifact", "nfcorpus"]
# (system, pooling, shift of per-query scores): SB-MoE TOP-1 is clearly better than FT.
SYSTEMS = [
    ("finetune", "none", 0.0),
    ("adapter-paper", "none", 0.0),
    ("random-gate-e6", "top1", -0.002),
    ("sbmoe-paper-e6", "top1", 0.08),
    ("sbmoe-paper-e6", "all", 0.001),
    ("sbmoe-learned-e6", "top1", 0.003),
    ("sbmoe-paper-e3", "top1", 0.004),
]


def evaluation(per_query_by_metric, relevance_threshold=1):
    """One evaluation in the pipeline's format."""
    return {
        "metrics": {metric: float(np.mean(list(scores.values()))) for metric, scores in per_query_by_metric.items()},
        "per_query": per_query_by_metric,
        "relevance_threshold": relevance_threshold,
        "num_queries": len(next(iter(per_query_by_metric.values()))),
    }


def synthetic_records(folder, seeds=(1,), encoder="tiny", skip=(), metrics=REPORTED_METRICS):
    """(keys, path) records of synthetic evaluations of ``metrics``: in-domain and zero-shot, every system.

    As the pipeline's evaluate step does, one JSON per model holds ``{testset: {pooling: evaluation}}``.
    ``skip`` lists (system, testset) pairs left out.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    documents, records = {}, []
    pairs = IN_DOMAIN + [("msmarco", testset) for testset in ZERO_SHOT]
    for number, (trainset, testset) in enumerate(pairs):
        base = np.random.default_rng(number).uniform(0.1, 0.6, (len(metrics), QUERIES))
        for system, pooling, shift in SYSTEMS:
            if (system, testset) in skip:
                continue
            for seed in seeds:
                noise = np.random.default_rng([number, seed, len(records)]).normal(0, 0.005, (len(metrics), QUERIES))
                scores = np.clip(base + shift + noise, 0, 1)
                per_query = {
                    metric: {f"q{i}": float(v) for i, v in enumerate(row)} for metric, row in zip(metrics, scores)
                }
                keys = dict(
                    encoder=encoder, trainset=trainset, system=system, seed=seed, testset=testset, pooling=pooling
                )
                path = folder / f"{encoder}-{trainset}-{system}-{seed}.json"
                documents.setdefault(path, {}).setdefault(testset, {})[pooling] = evaluation(per_query)
                records.append((keys, path))
    for path, document in documents.items():
        path.write_text(json.dumps(document))
    return records


def write_routing(path, ids, experts, num_experts):
    """An encoded-texts npz in the pipeline's format (random embeddings)."""
    experts = np.asarray(experts)
    gate = np.zeros((len(ids), num_experts), dtype=np.float32)
    if num_experts:
        gate[np.arange(len(ids)), experts] = 1.0
    embeddings = np.random.default_rng(len(ids)).normal(size=(len(ids), 8)).astype(np.float32)
    np.savez(path, ids=np.array(ids, dtype=str), embeddings=embeddings, experts=experts, gate=gate)
    return path


@pytest.fixture
def results(tmp_path):
    return load_results(synthetic_records(tmp_path, skip={("adapter-paper", "nq")}))


def test_parse_system_and_labels():
    assert parse_system("sbmoe-learned-e12") == {"variant": "sbmoe", "combination": "learned", "num_experts": 12}
    assert display_label("finetune") == "FT"
    assert display_label("zeroshot") == "Zero-shot"
    assert display_label("sbmoe-paper-e6", "all") == "SB-MoE ALL E=6"
    assert display_label("sbmoe-learned-e6", "top1", experts=False) == "SB-MoE TOP-1 (learned gate)"
    assert display_label("random-gate-e9", "top1") == "RANDOM-GATE E=9"
    assert display_label("adapter-learned") == "Adapter (learned gate)"
    assert system_order("finetune") < system_order("adapter-paper") < system_order("random-gate-e6", "top1")
    assert system_order("sbmoe-paper-e6", "all") < system_order("adapter-learned")


def test_load_results_and_seed_aggregation(tmp_path):
    frame = load_results(synthetic_records(tmp_path, seeds=(1, 2)))
    assert {"encoder", "variant", "num_experts", "label", "ndcg@10", "per_query"} <= set(frame.columns)
    summary = aggregate_seeds(frame, ["ndcg@10"])
    assert (summary["seeds"] == 2).all()
    row = summary[(summary["system"] == "finetune") & (summary["testset"] == "msmarco")].iloc[0]
    values = frame[(frame["system"] == "finetune") & (frame["testset"] == "msmarco")]["ndcg@10"]
    assert row["ndcg@10"] == pytest.approx(values.mean())
    assert row["ndcg@10_std"] == pytest.approx(values.std(ddof=1))


def test_read_evaluation_single_or_per_model(tmp_path):
    single = evaluation({"ndcg@10": {"q1": 0.5, "q2": 0.25}})
    (tmp_path / "one.json").write_text(json.dumps(single))
    (tmp_path / "model.json").write_text(json.dumps({"scifact": {"top1": single, "all": single}}))
    assert read_evaluation(tmp_path / "one.json") == single
    assert read_evaluation(tmp_path / "model.json", "scifact", "all") == single
    with pytest.raises(ValueError, match="no evaluation"):
        read_evaluation(tmp_path / "model.json", "nq", "top1")


def test_pooling_file_and_groups(tmp_path):
    (tmp_path / "queries").mkdir()
    assert pooling_file(tmp_path / "queries", "top1", ".npz") == tmp_path / "queries" / "top1.npz"
    assert pooling_file(tmp_path / "run.trec", "top1", ".trec") == tmp_path / "run.trec"
    assert group_by_counts(["a", "b", "c"], [2, 1]) == [["a", "b"], ["c"]]
    assert group_by_counts(["a", "b"], None) == [["a"], ["b"]]
    with pytest.raises(ValueError):
        group_by_counts(["a"], [2])


def test_corpus_files_in_shard_order(tmp_path):
    frozen = tmp_path / "frozen" / "corpus"  # a frozen encoder's search job: corpus/<shard>/<pooling>.npz
    for shard in (0, 2, 10):
        (frozen / str(shard)).mkdir(parents=True)
    sharded = [tmp_path / "corpus" / str(shard) for shard in (0, 1)]  # one folder per encode job
    for folder in sharded:
        folder.mkdir(parents=True)
    assert corpus_files([frozen], "all") == [frozen / s / "all.npz" for s in ("0", "2", "10")]
    assert corpus_files(sharded, "top1") == [folder / "top1.npz" for folder in sharded]
    assert corpus_files([tmp_path / "c.npz"], "top1") == [tmp_path / "c.npz"]


def test_metric_labels_for_any_metric():
    assert [metric_label(m) for m in ("ndcg@10", "recall@100", "map@100")] == ["nDCG@10", "R@100", "MAP@100"]
    assert [metric_label(m) for m in ("map@1000", "ndcg@5", "precision@10", "mrr@100")] == [
        "MAP@1000",
        "nDCG@5",
        "P@10",
        "MRR@100",
    ]


def test_latex_escape_and_format():
    assert latex_escape("a_b & 50% #1 {x}") == r"a\_b \& 50\% \#1 \{x\}"
    assert format_score(0.2444) == ".244"
    assert format_score(float("nan")) == "--"


def _line(latex, label):
    return next(line for line in latex.splitlines() if f"& {latex_escape(label)} &" in line or line.startswith(label))


def test_in_domain_table_bold_dagger_and_missing(results):
    report = significance_report(results, REPORTED_METRICS, permutations=2000)
    table = in_domain_table(
        results, IN_DOMAIN, report, metrics=REPORTED_METRICS, dataset_labels={"msmarco": "MS MARCO", "nq": "NQ"}
    )
    latex = table.latex
    assert latex.startswith(r"\begin{tabular}") and r"\toprule" in latex and r"\bottomrule" in latex
    assert r"\begin{table}" not in latex
    assert r"\multicolumn{2}{c}{MS MARCO}" in latex
    best = _line(latex, "SB-MoE TOP-1 E=6")
    cells = best.removesuffix(r" \\").split(" & ")[2:]
    assert all(cell.startswith(r"\textbf{") and r"$^{\dagger}$" in cell for cell in cells)
    ft = _line(latex, "FT").removesuffix(r" \\").split(" & ")[2:]
    assert not any(r"\textbf" in cell or r"\dagger" in cell for cell in ft)
    adapter = _line(latex, "Adapter").removesuffix(r" \\").split(" & ")
    assert adapter[4:] == ["--", "--"]  # adapter was not run on NQ
    # Row order: FT, Adapter, RANDOM-GATE, SB-MoE (E=3 before E=6, TOP-1 before ALL), learned last.
    labels = [line.split(" & ")[1] for line in latex.splitlines() if line.startswith(("tiny &", " &"))][1:]
    assert labels == [
        "FT",
        "Adapter",
        "RANDOM-GATE E=6",
        "SB-MoE TOP-1 E=3",
        "SB-MoE TOP-1 E=6",
        "SB-MoE ALL E=6",
        "SB-MoE TOP-1 E=6 (learned gate)",
    ]
    csv = table.frame
    winner = csv[(csv["system"] == "sbmoe-paper-e6") & (csv["pooling"] == "top1")]
    assert winner["best"].all() and winner["significant"].all()
    assert len(csv) == 2 * 2 * len(SYSTEMS) - 2


def test_in_domain_table_shows_std_with_several_seeds(tmp_path):
    table = in_domain_table(
        load_results(synthetic_records(tmp_path, seeds=(1, 2, 3))), IN_DOMAIN[:1], metrics=REPORTED_METRICS
    )
    assert r"\,$\pm$" in _line(table.latex, "FT")
    assert "\\scriptsize" not in table.latex and "\\tiny" not in table.latex  # no table below the paper's size


def _rows(latex):
    """``{first cell: the other cells}`` of every body row of a tabular."""
    return {
        line.split(" & ")[0]: line.removesuffix(r" \\").split(" & ")[1:]
        for line in latex.splitlines()
        if " & " in line and not line.startswith(" &")
    }


def test_zero_shot_table_has_systems_as_rows_and_an_average_column(tmp_path):
    frame = load_results(synthetic_records(tmp_path, skip={("adapter-paper", "nfcorpus")}))
    table = zero_shot_table(frame, "msmarco", ZERO_SHOT, metrics=["ndcg@10"])
    rows = _rows(table.latex)
    assert rows["System"] == [*ZERO_SHOT, "Average"]
    labels = [
        display_label(*pair) for pair in sorted(((s, p) for s, p, _ in SYSTEMS), key=lambda pair: system_order(*pair))
    ]
    assert [name for name in rows if name != "System"] == labels
    csv = table.frame
    ft = csv[(csv["system"] == "finetune") & (csv["testset"].isin(ZERO_SHOT))]["mean"].mean()
    average = csv[(csv["system"] == "finetune") & (csv["testset"] == "average")]["mean"].iloc[0]
    assert average == pytest.approx(ft)
    assert rows["FT"][-1] == format_score(ft)
    assert rows["Adapter"][-1] == "--"
    assert rows["SB-MoE TOP-1 E=6"][-1].startswith(r"\textbf{")
    assert rows["SB-MoE TOP-1 E=6"][0].startswith(r"\textbf{")
    assert "\\scriptsize" not in table.latex and "\\resizebox" not in table.latex


def test_zero_shot_table_splits_many_test_sets_into_panels(tmp_path):
    """Thirteen test sets (the full study's) and the Average: three tabulars of at most PANEL_WIDTH
    columns, every test set once, the CSV the same records as one wide table would hold."""
    frame = load_results(synthetic_records(tmp_path))
    scifact = frame[frame["testset"] == "scifact"]
    testsets = [f"set{number}" for number in range(13)]
    many = pd.concat([scifact.assign(testset=name) for name in testsets], ignore_index=True)
    table = zero_shot_table(many, "msmarco", testsets, metrics=["ndcg@10"])
    headers = [
        line.removesuffix(r" \\").split(" & ")[1:] for line in table.latex.splitlines() if line.startswith("System &")
    ]
    assert len(headers) == 3 and all(len(header) <= PANEL_WIDTH for header in headers)
    assert [name for header in headers for name in header] == [*testsets, "Average"]
    assert table.latex.count(r"\begin{tabular}") == 3
    assert len(table.frame) == (len(testsets) + 1) * len(SYSTEMS)


def test_reproduction_table_matches_published_names(results):
    reference = load_reference(REFERENCE)
    assert reference["configurations"] == ["FT", 3, 6, 9, 12]
    table = reproduction_table(
        results, reference, IN_DOMAIN, REPORTED_METRICS, dataset_labels={"msmarco": "MS MARCO", "nq": "NQ"}
    )
    csv = table.frame
    ft = csv[(csv["dataset"] == "MSMARCO") & (csv["configuration"] == "FT") & (csv["metric"] == "ndcg@10")].iloc[0]
    ours = results[(results["system"] == "finetune") & (results["testset"] == "msmarco")]["ndcg@10"].iloc[0]
    assert ft["paper"] == pytest.approx(0.244) and ft["ours"] == pytest.approx(ours)
    assert ft["difference"] == pytest.approx(ours - 0.244)
    not_run = csv[(csv["dataset"] == "DL19")]
    assert not_run["ours"].isna().all() and not_run["paper"].notna().all()
    e9 = csv[(csv["dataset"] == "NQ") & (csv["configuration"] == "E=9")]
    assert e9["ours"].isna().all()
    shown = [line.split(" & ")[0] for line in table.latex.splitlines() if " & Paper & " in line]
    assert shown == ["MSMARCO", "NQ"]  # the published datasets this configuration ran; the CSV keeps DL19
    nq = [line for line in table.latex.splitlines() if " & Ours & " in line][1]
    assert "--" in nq.split(" & ")  # E=9 was not run on NQ


def test_reproduction_table_without_a_published_setting_is_one_line(results):
    """A configuration that runs none of the paper's datasets: the LaTeX is one line naming the
    configuration that runs them, the CSV still lists every published value."""
    reference = load_reference(REFERENCE)
    table = reproduction_table(results, reference, [("msmarco", "scifact")], REPORTED_METRICS)
    body = [line for line in table.latex.splitlines() if line.endswith(r"\\")]
    assert len(body) == 1 and "config.yaml" in body[0] and "--" not in table.latex
    published = sum(len(values) for datasets in reference["metrics"].values() for values in datasets.values())
    assert len(table.frame) == published and table.frame["ours"].isna().all()


def test_experts_table_counts_activated_experts(tmp_path):
    keys = dict(encoder="tiny", trainset="msmarco", system="sbmoe-paper-e6", seed=1, testset="scifact", pooling="top1")
    queries = write_routing(tmp_path / "q.npz", ["q1", "q2", "q3", "q4"], [0, 0, 2, 2], 6)
    corpus = [  # two shards
        write_routing(tmp_path / "c0.npz", [f"d{i}" for i in range(4)], [0, 1, 1, 2], 6),
        write_routing(tmp_path / "c1.npz", [f"d{i}" for i in range(4, 10)], [2, 2, 5, 5, 5, 5], 6),
    ]
    ft_keys = dict(keys, system="finetune", pooling="none")
    ft_queries = write_routing(tmp_path / "fq.npz", ["q1"], [-1], 0)
    table = experts_table(
        [(keys, queries, corpus), (ft_keys, ft_queries, ft_queries)], dataset_labels={"scifact": "SciFact"}
    )
    row = next(line for line in table.latex.splitlines() if line.startswith("SB-MoE"))
    # one routing: E = 6, 1 routing, 2 experts activated by queries and 4 by documents, the busiest
    # expert receiving 50% of the queries and 40% of the documents
    assert row == r"SB-MoE TOP-1 E=6 & 6 & 1 & 2 & 4 & 50 & 40 \\"
    assert set(table.frame["system"]) == {"sbmoe-paper-e6"}
    documents = table.frame[table.frame["side"] == "documents"]
    assert documents["count"].tolist() == [1, 2, 3, 0, 0, 4] and (documents["activated"] == 4).all()
    assert isinstance(table.frame, pd.DataFrame)


def test_experts_table_summarises_a_system_over_its_routings(tmp_path):
    """Two seeds of one system: one row, the mean and range of what varies, the CSV every expert."""
    records = []
    for seed, experts in ((1, [0, 0, 1, 1]), (2, [0, 1, 2, 3])):
        keys = dict(
            encoder="tiny", trainset="msmarco", system="sbmoe-paper-e6", seed=seed, testset="scifact", pooling="top1"
        )
        routed = write_routing(tmp_path / f"{seed}.npz", ["t1", "t2", "t3", "t4"], experts, 6)
        records.append((keys, routed, routed))
    table = experts_table(records)
    assert _rows(table.latex)["SB-MoE TOP-1 E=6"] == [
        "6",
        "2",
        "3.0 (2--4)",
        "3.0 (2--4)",
        "37.5 (25--50)",
        "37.5 (25--50)",
    ]
    assert len(table.frame) == 2 * 2 * 6


def test_table_write_is_atomic_pair(tmp_path, results):
    table = in_domain_table(results, IN_DOMAIN, metrics=REPORTED_METRICS)
    table.write(tmp_path / "out" / "t.tex", tmp_path / "out" / "t.csv")
    assert (tmp_path / "out" / "t.tex").read_text() == table.latex
    assert len(pd.read_csv(tmp_path / "out" / "t.csv")) == len(table.frame)


def test_untrained_encoder_sits_under_every_training_set(tmp_path):
    records = synthetic_records(tmp_path)
    document = {}
    for testset in ("msmarco", "nq", "scifact"):
        per_query = {
            "ndcg@10": {f"q{i}": 0.1 for i in range(QUERIES)},
            "recall@100": {f"q{i}": 0.2 for i in range(QUERIES)},
        }
        document[testset] = {"none": evaluation(per_query)}
        keys = dict(encoder="tiny", trainset="none", system="zeroshot", seed=0, testset=testset, pooling="none")
        records.append((keys, tmp_path / "zeroshot.json"))
    (tmp_path / "zeroshot.json").write_text(json.dumps(document))
    results = load_results(records)
    report = significance_report(results, ["ndcg@10"], permutations=2000)
    untrained = [c for c in report["comparisons"] if c["system"] == "zeroshot"]
    assert {(c["trainset"], c["testset"]) for c in untrained} == {
        ("msmarco", "msmarco"),
        ("nq", "nq"),
        ("msmarco", "scifact"),
    }
    assert all(c["family_size"] == len(SYSTEMS) for c in untrained)
    in_domain = in_domain_table(results, IN_DOMAIN, report, metrics=REPORTED_METRICS)
    row = _line(in_domain.latex, "Zero-shot").removesuffix(r" \\").split(" & ")
    assert row[:3] == ["tiny", "Zero-shot", r".100$^{\dagger}$"]
    zero_shot = zero_shot_table(results, "msmarco", ZERO_SHOT, metrics=["ndcg@10"])
    assert zero_shot.latex.splitlines()[4].startswith("Zero-shot & ")
