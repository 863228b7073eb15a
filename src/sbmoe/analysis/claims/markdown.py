"""The verdicts as Markdown, for a README or an issue: which claims hold, then one table row per
claim and setting on the first metric (``sbmoe verdicts results/analysis/verdicts.json``). Every
number is formatted from the verdicts' JSON (:func:`sbmoe.analysis.claims.verdicts.study_verdicts`).
"""

from __future__ import annotations

from collections.abc import Mapping

from sbmoe.analysis.claims.report import SUMMARIES, p_plain, plain, signed_text
from sbmoe.analysis.latex import MISSING
from sbmoe.systems.labels import metric_label


def _where(setting: Mapping) -> str:
    if setting["testset"] is None or setting["testset"] == setting["trainset"]:
        return f"{setting['encoder']}, {setting['trainset']}"
    return f"{setting['encoder']}, {setting['trainset']} → {setting['testset']}"


def _row(claim: Mapping, setting: Mapping, metric: str) -> str:
    versus = f"{setting['a_label']} vs {setting['b_label']}" if setting["b_label"] else setting["a_label"]
    kind = "reproduction" if setting["reproduction"] else "generalization"
    if "gate_gradient" in setting:
        cells = [f"largest gate gradient norm {setting['gate_gradient']['largest']:.1e}", MISSING, MISSING]
    else:
        evidence = setting["metrics"][metric]  # every setting has the first metric (the one that decides)
        interval = f"[{signed_text(evidence['ci_low'])}, {signed_text(evidence['ci_high'])}]"
        cells = [
            f"{signed_text(evidence['difference'])} {interval}",
            p_plain(evidence["p_value"]),
            plain(evidence["mde"]),
        ]
    return "| " + " | ".join([claim["id"], _where(setting), kind, versus, *cells, setting["verdict"]]) + " |"


def verdicts_markdown(report: Mapping) -> str:
    """A list of the claims by how they fare, and the table of every tested setting."""
    metric = report["metrics"][0]
    lines = []
    for summary in SUMMARIES:
        claims = [c for c in report["claims"] if c["summary"] == summary]
        if claims:
            lines.append(f"- **{summary.capitalize()}**: " + "; ".join(f"`{c['id']}` ({c['short']})" for c in claims))
    confidence = f"{100 * report['defaults']['confidence']:g}%"
    lines += [
        "",
        f"| claim | setting | kind | A vs B | Δ {metric_label(metric)} [{confidence} CI] | p | MDE | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [_row(claim, setting, metric) for claim in report["claims"] for setting in claim["settings"]]
    return "\n".join(lines) + "\n"
