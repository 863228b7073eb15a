"""macros.tex, the workflow scripts, and compiling paper/main.tex with synthetic generated inputs."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_figures import synthetic_tsne_inputs, write_training_logs
from test_routing import EXPERTS, PAIRS, synthetic_routing
from test_tables import (
    IN_DOMAIN,
    REFERENCE,
    ZERO_SHOT,
    synthetic_records,
    write_routing,
)
from threadpoolctl import threadpool_limits

from sbmoe.io.atomic import write_text
from sbmoe.analysis.figures import expert_count_figure, routing_figure, training_curves_figure, tsne_figure
from sbmoe.analysis.paper import MACROS, load_table, paper_macros, render_macros, write_macros
from sbmoe.evaluation.results import load_results
from sbmoe.systems.labels import display_label
from sbmoe.selection.comparison import significance_against_best_single
from sbmoe.evaluation.significance import significance_report
from sbmoe.analysis.tables import (
    experts_table,
    in_domain_table,
    load_reference,
    reproduction_table,
    routing_table,
    zero_shot_table,
)

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "paper" / "main.tex"
SCRIPTS = ROOT / "workflow" / "scripts"
LABELS = {"msmarco": "MS MARCO", "nq": "NQ", "scifact": "SciFact", "nfcorpus": "NFCorpus", "cranfield": "Cranfield"}
# Upper-case commands main.tex takes from LaTeX itself; every other one must be a generated macro.
LATEX_COMMANDS = {"Delta", "Big", "IfFileExists"}
DATASET_STATS = textwrap.dedent(
    r"""
    \begin{tabular}{lrr}
    \toprule
    Dataset & Queries & Documents \\
    \midrule
    SciFact & 300 & 5{,}183 \\
    \bottomrule
    \end{tabular}
    """
)
@pytest.fixture
def latexmk():
    """The paper's tools are part of the setup (`make tex`), so their absence is a failure, not a skip."""
    if shutil.which("latexmk") is None:
        pytest.fail("latexmk is not installed: run scripts/setup-tex (make tex)")


def routing_records(folder):
    """(keys, queries npz, corpus npz) for two SB-MoE systems, one with an unused expert."""
    records = []
    for system, experts in (("sbmoe-paper-e3", [0, 1, 1, 2]), ("sbmoe-learned-e3", [0, 0, 1, 1])):
        keys = dict(encoder="tiny", trainset="msmarco", system=system, seed=1, testset="scifact", pooling="top1")
        queries = write_routing(folder / f"{system}-q.npz", ["q1", "q2"], experts[:2], 3)
        corpus = write_routing(folder / f"{system}-c.npz", ["d1", "d2", "d3", "d4"], experts, 3)
        records.append((keys, queries, corpus))
    return records


def build_generated(folder):
    """Every file paper/main.tex inputs, from synthetic results, with the library."""
    generated = folder / "generated"
    results = load_results(synthetic_records(folder / "evals", seeds=(1, 2)))
    report = significance_report(results, ["ndcg@10", "recall@100"], permutations=1000)
    tables = {
        "in_domain": in_domain_table(results, IN_DOMAIN, report, dataset_labels=LABELS),
        "zero_shot": zero_shot_table(results, "msmarco", ZERO_SHOT, report, dataset_labels=LABELS),
        "reproduction": reproduction_table(results, load_reference(REFERENCE), IN_DOMAIN, dataset_labels=LABELS),
        "experts": experts_table(routing_records(folder), dataset_labels=LABELS),
    }
    evaluations, choices = synthetic_routing()
    routed = significance_against_best_single(evaluations, {"scifact": EXPERTS}, permutations=1000)
    tables["routing"] = routing_table(evaluations, EXPERTS, PAIRS, routed, {"scifact": 0.665}, dataset_labels=LABELS)
    for name, table in tables.items():
        table.write(generated / f"{name}.tex", generated / f"{name}.csv")
    write_text(generated / "dataset_stats.tex", DATASET_STATS)
    figures = generated / "figures"
    expert_count_figure(
        results, IN_DOMAIN, figures / "expert_count.pdf", figures / "expert_count.png", dataset_labels=LABELS
    )
    panels, qrels = synthetic_tsne_inputs(folder)
    with threadpool_limits(limits=1, user_api="openmp"):
        tsne = tsne_figure(panels, qrels, figures / "tsne.pdf", figures / "tsne.png", depth=60)
    logs = write_training_logs(folder)
    labelled = [(display_label(keys["system"], keys["pooling"]), path) for keys, path in logs]
    training_curves_figure(labelled, figures / "training_curves.pdf", figures / "training_curves.png")
    shares = routing_figure(choices, PAIRS, figures / "routing.pdf", figures / "routing.png", LABELS)
    values = paper_macros(
        **{name: load_table(generated / f"{name}.csv") for name in tables}, significance=report, logs=logs, tsne=tsne,
        routing_figure=shares,
    )
    write_macros(generated / "macros.tex", values)
    return values, results


def compile_paper(folder):
    shutil.copy(MAIN, folder / "main.tex")
    completed = subprocess.run(
        ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = (folder / "main.log").read_text(errors="replace") if (folder / "main.log").exists() else ""
    assert completed.returncode == 0, completed.stdout[-3000:] + log[-3000:]
    assert (folder / "main.pdf").stat().st_size > 10_000
    if (folder / "generated" / "routing.tex").exists():
        assert r"\newlabel{tab:routing}" in (folder / "main.aux").read_text()
    assert "undefined" not in re.sub(r"\s+", " ", log).lower().replace("undefined on input line", ""), log[-3000:]


def test_render_macros_letters_only():
    assert render_macros({"BestNdcg": "0.251"}).splitlines()[-1] == r"\newcommand{\BestNdcg}{0.251}"
    with pytest.raises(ValueError, match="letters only"):
        render_macros({"Best2": "x"})
    assert all(re.fullmatch(r"[A-Za-z]+", name) for name in MACROS)


def test_every_macro_is_defined_without_results():
    values = paper_macros()
    assert set(values) == set(MACROS) and set(values.values()) == {"--"}


def test_main_tex_uses_only_generated_macros():
    used = set(re.findall(r"\\([A-Z][A-Za-z]*)", MAIN.read_text()))
    assert used - LATEX_COMMANDS <= set(MACROS)
    assert set(MACROS) <= used, "a macro is generated but never stated in the text"


def test_macros_come_from_the_results(tmp_path):
    values, results = build_generated(tmp_path)
    ft = results[(results["system"] == "finetune") & (results["testset"] == "msmarco")]["ndcg@10"].mean()
    assert values["HeadFTNdcg"] == f"{ft:.3f}"
    assert values["HeadBestSystem"] == "SB-MoE TOP-1 E=6"
    assert values["HeadDataset"] == "MS MARCO"
    assert values["GateGradPaper"] == "0"
    assert values["GateGradLearned"] not in ("0", "--")
    assert values["NumSeeds"] == "2" and values["NumZeroShot"] == "2"
    assert values["ExpertRows"] == "2" and values["AllActivatedDocs"] == "1"
    assert values["MaxEpochs"] == "6"
    assert values["TsneQuery"].startswith("q")
    assert "--" not in {values[name] for name in ("NumSignificant", "SigAlpha", "ReproMeanAbsDiffNdcg")}
    assert "--" not in {value for name, value in values.items() if name.startswith("Routing")}


def test_paper_compiles(tmp_path, latexmk):
    build_generated(tmp_path)
    compile_paper(tmp_path)


def test_paper_compiles_without_results(tmp_path, latexmk):
    """Every macro reads ``--`` and every table is empty: the report still builds."""
    build_generated(tmp_path)
    write_macros(tmp_path / "generated" / "macros.tex", paper_macros())
    compile_paper(tmp_path)


SNAKEFILE = """
EVALS = {evals!r}
KEYS = {keys!r}
LOGS = {logs!r}
LOG_KEYS = {log_keys!r}
PANELS = {panels!r}
NPZ = {npz!r}
SCRIPTS = {scripts!r}

rule all:
    input: "generated/macros.tex"

rule significance:
    input: evals=EVALS
    output: json="generated/significance.json"
    params: eval_keys=KEYS, permutations=1000
    log: "logs/significance.log"
    script: SCRIPTS + "/significance.py"

rule in_domain:
    input: evals=EVALS, significance="generated/significance.json"
    output: tex="generated/in_domain.tex", csv="generated/in_domain.csv"
    params: table="in_domain", eval_keys=KEYS, datasets={in_domain!r}, dataset_labels={labels!r}
    log: "logs/in_domain.log"
    script: SCRIPTS + "/tables.py"

rule zero_shot:
    input: evals=EVALS, significance="generated/significance.json"
    output: tex="generated/zero_shot.tex", csv="generated/zero_shot.csv"
    params: table="zero_shot", eval_keys=KEYS, trainset="msmarco", testsets={zero_shot!r}
    log: "logs/zero_shot.log"
    script: SCRIPTS + "/tables.py"

rule reproduction:
    input: evals=EVALS, reference={reference!r}
    output: tex="generated/reproduction.tex", csv="generated/reproduction.csv"
    params: table="reproduction", eval_keys=KEYS, datasets={in_domain!r}, dataset_labels={labels!r}
    log: "logs/reproduction.log"
    script: SCRIPTS + "/tables.py"

rule experts:
    input: queries=[q for _, q, _ in NPZ], corpus=[c for _, _, c in NPZ]
    output: tex="generated/experts.tex", csv="generated/experts.csv"
    params: table="experts", npz_keys=[k for k, _, _ in NPZ]
    log: "logs/experts.log"
    script: SCRIPTS + "/tables.py"

rule expert_count:
    input: evals=EVALS
    output: pdf="generated/figures/expert_count.pdf", png="generated/figures/expert_count.png", json="generated/figures/expert_count.json"
    params: eval_keys=KEYS, datasets={in_domain!r}
    log: "logs/expert_count.log"
    script: SCRIPTS + "/figure_expert_count.py"

rule tsne:
    input:
        runs=[p["run"] for p in PANELS], queries=[p["queries"] for p in PANELS],
        corpus=[shard for p in PANELS for shard in p["corpus"]], qrels={qrels!r}
    output: pdf="generated/figures/tsne.pdf", png="generated/figures/tsne.png", json="generated/figures/tsne.json"
    params:
        labels=[p["label"] for p in PANELS], poolings=[p["pooling"] for p in PANELS],
        corpus_shards=[len(p["corpus"]) for p in PANELS], depth=60, seed=1
    log: "logs/tsne.log"
    script: SCRIPTS + "/figure_tsne.py"

rule training:
    input: logs=LOGS
    output: pdf="generated/figures/training_curves.pdf", png="generated/figures/training_curves.png", json="generated/figures/training_curves.json"
    params: labels=[k["system"] for k in LOG_KEYS]
    log: "logs/training.log"
    script: SCRIPTS + "/figure_training.py"

rule macros:
    input:
        in_domain="generated/in_domain.csv", zero_shot="generated/zero_shot.csv",
        reproduction="generated/reproduction.csv", experts="generated/experts.csv",
        significance="generated/significance.json", tsne="generated/figures/tsne.json", logs=LOGS,
        figures=["generated/figures/expert_count.pdf", "generated/figures/training_curves.pdf"]
    output: tex="generated/macros.tex"
    params: log_keys=LOG_KEYS
    log: "logs/macros.log"
    script: SCRIPTS + "/paper_macros.py"
"""


def pipeline_folders(panels, folder):
    """Lay t-SNE panels out as the pipeline does: runs/<model>/<pooling>.trec,
    encoded/<model>/queries/<pooling>.npz and encoded/<model>/corpus/<shard>/<pooling>.npz. The first
    panel lists its shard folders (one encode job each), the second its corpus folder (a frozen
    encoder's search job)."""
    laid_out = []
    for number, (panel, pooling) in enumerate(zip(panels, ("none", "top1"), strict=True)):
        model = folder / f"model{number}"
        files = {model / "runs" / f"{pooling}.trec": panel.run, model / "queries" / f"{pooling}.npz": panel.queries}
        shards = [model / "corpus" / str(shard) for shard in range(len(panel.corpus))]
        files.update({shard / f"{pooling}.npz": path for shard, path in zip(shards, panel.corpus, strict=True)})
        for target, source in files.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
        laid_out.append(
            {
                "label": panel.label,
                "pooling": pooling,
                "run": str(model / "runs"),
                "queries": str(model / "queries"),
                "corpus": [str(model / "corpus")] if number else [str(shard) for shard in shards],
            }
        )
    return laid_out


def test_workflow_scripts_build_the_paper(tmp_path, latexmk):
    pytest.importorskip("snakemake")
    records = synthetic_records(tmp_path / "evals")
    logs = write_training_logs(tmp_path)
    panels, qrels = synthetic_tsne_inputs(tmp_path)
    (tmp_path / "Snakefile").write_text(
        SNAKEFILE.format(
            evals=[str(path) for _, path in records],
            keys=[keys for keys, _ in records],
            logs=[str(path) for _, path in logs],
            log_keys=[keys for keys, _ in logs],
            panels=pipeline_folders(panels, tmp_path / "results"),
            npz=[(keys, str(q), str(c)) for keys, q, c in routing_records(tmp_path)],
            scripts=str(SCRIPTS),
            in_domain=[list(pair) for pair in IN_DOMAIN],
            zero_shot=ZERO_SHOT,
            labels=LABELS,
            reference=str(REFERENCE),
            qrels=str(tmp_path / "qrels.tsv"),
        )
    )
    completed = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--quiet", "rules"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    macros = (tmp_path / "generated" / "macros.tex").read_text()
    assert r"\newcommand{\HeadDataset}{MS MARCO}" in macros
    description = json.loads((tmp_path / "generated" / "figures" / "tsne.json").read_text())
    assert rf"\newcommand{{\TsneQuery}}{{{description['qid']}}}" in macros
    direct = tsne_figure(panels, qrels, tmp_path / "direct.pdf", tmp_path / "direct.png", depth=60, seed=1)
    assert description == json.loads(json.dumps(direct))  # every shard was read, in both folder layouts
    write_text(tmp_path / "generated" / "dataset_stats.tex", DATASET_STATS)
    compile_paper(tmp_path)
