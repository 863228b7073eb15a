"""The verdicts as the report shows them: a CSV (one row per claim, setting and metric), the paper's
"Verdicts" section (the rule, the claims, one table row per claim and setting, the reproduction
measures) and the abstract's sentences. Every number is formatted from the verdicts' JSON
(:func:`sbmoe.analysis.claims.verdicts.study_verdicts`, with :func:`overview`), none typed here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from sbmoe.analysis.latex import MISSING, latex_escape
from sbmoe.systems.labels import METRIC_LABELS

NOT_TESTED = "not tested here"
SUMMARIES = ("holds", "holds in some settings", "does not hold", "inconclusive", NOT_TESTED)  # a claim's, in order


def overview(report: Mapping) -> dict:
    """How many claims were tested and how many hold in all, some or none of their settings."""
    claims = report["claims"]
    counts = {key: sum(claim["summary"] == key for claim in claims) for key in SUMMARIES}
    return {
        "claims": len(claims),
        "tested": len(claims) - counts[NOT_TESTED],
        "settings": sum(len(claim["settings"]) for claim in claims),
        "reproductions": sum(claim["reproductions"] for claim in claims),
        **counts,
    }


# ---------------------------------------------------------------------------------------------
# Number formats (the test of the generator formats the JSON's numbers with these)


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def signed_text(value: float | None) -> str:
    """A difference with its sign, three decimals, as plain text (``+0.012``, ``-0.034``)."""
    return MISSING if _missing(value) else f"{value:+.3f}"


def signed(value: float | None) -> str:
    """:func:`signed_text` in LaTeX (a true minus sign)."""
    return MISSING if _missing(value) else signed_text(value).replace("-", "$-$")


def plain(value: float | None) -> str:
    return MISSING if _missing(value) else f"{value:.3f}"


def p_plain(value: float | None) -> str:
    """A p-value as plain text: three decimals, or ``<0.001`` below it."""
    if _missing(value):
        return MISSING
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def p_text(value: float | None) -> str:
    """:func:`p_plain` in LaTeX."""
    return p_plain(value).replace("<", "$<$")


def quantity(value: float | None) -> str:
    """A gradient norm: ``0`` when zero, else two significant digits in scientific notation."""
    if value is None or math.isnan(value):
        return MISSING
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.1e}".split("e")
    return rf"${mantissa}\times10^{{{int(exponent)}}}$"


# ---------------------------------------------------------------------------------------------
# CSV


def verdict_rows(report: Mapping) -> pd.DataFrame:
    """One row per claim, setting and metric (gate-gradient settings: metric ``gate_grad_norm``;
    an untested claim: one row with verdict "not tested here")."""
    rows = []
    for claim in report["claims"]:
        head = {"claim": claim["id"], "source": claim["source"], "relation": claim["relation"], "delta": claim["delta"]}
        if not claim["settings"]:
            rows.append({**head, "verdict": NOT_TESTED, "reason": f"tested by {claim['tested_by']}"})
        for setting in claim["settings"]:
            where = {key: setting[key] for key in ("encoder", "trainset", "testset", "split", "reproduction")}
            where.update(a=" / ".join(setting["a"]), b=" / ".join(setting["b"]))
            if "gate_gradient" in setting:
                gate = setting["gate_gradient"]
                rows.append(
                    {
                        **head,
                        **where,
                        "metric": "gate_grad_norm",
                        "mean_a": gate["largest"],
                        "mean_b": gate["control_mean"],
                        "verdict": setting["verdict"],
                        "reason": setting["reason"],
                    }
                )
                continue
            for metric, evidence in setting["metrics"].items():
                rows.append({**head, **where, "metric": metric, **evidence})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# LaTeX


def _setting_text(setting: Mapping, labels: Mapping[str, str]) -> str:
    train = labels.get(setting["trainset"], setting["trainset"])
    if setting["testset"] is None:
        where = f"{setting['encoder']}, trained on {train}"
    else:
        test = labels.get(setting["testset"], setting["testset"])
        where = f"{setting['encoder']}, {test}" if test == train else f"{setting['encoder']}, {train} to {test}"
    versus = f"{setting['a_label']} vs {setting['b_label']}" if setting["b_label"] else setting["a_label"]
    return latex_escape(f"{where}: {versus}")


def _interval(evidence: Mapping | None) -> str:
    if not evidence:
        return MISSING
    return f"{signed(evidence['difference'])} [{signed(evidence['ci_low'])}, {signed(evidence['ci_high'])}]"


def _setting_row(number: int, setting: Mapping, metrics: Sequence[str], labels: Mapping[str, str]) -> str:
    kind = "R" if setting["reproduction"] else "G"
    if "gate_gradient" in setting:
        gate = setting["gate_gradient"]
        cells = [
            f"max $\\lVert\\nabla g\\rVert$ {quantity(gate['largest'])}",
            MISSING,
            MISSING,
            setting["verdict"],
            MISSING,
            MISSING,
        ]
    else:
        first = setting["metrics"].get(metrics[0])
        second = setting["metrics"].get(metrics[1]) if len(metrics) > 1 else None
        cells = [
            _interval(first),
            p_text(first["p_value"]),
            plain(first["mde"]),
            first["verdict"],
            signed(second["difference"]) if second else MISSING,
            second["verdict"] if second else MISSING,
        ]
    return " & ".join([f"C{number}", _setting_text(setting, labels), kind, *cells]) + r" \\"


def verdict_table(report: Mapping, labels: Mapping[str, str] | None = None) -> str:
    """The longtable of verdicts: one row per claim and setting (an untested claim: one row)."""
    labels, metrics = labels or {}, report["metrics"]
    names = [METRIC_LABELS.get(m, latex_escape(m)) for m in metrics]
    confidence, power = _percent(report["defaults"]["confidence"]), _percent(report["defaults"]["power"])
    header = (
        rf"Claim & Setting & & $\Delta$ {names[0]} [{confidence}\% CI] & $p$ & MDE & Verdict & "
        rf"$\Delta$ {names[-1]} & Verdict \\"
    )
    caption = (
        r"\caption{Verdict per claim and setting (R: reproduction, the original's encoder and data; G: "
        r"generalization). $\Delta$: mean per-query difference A $-$ B, scores averaged over seeds (the "
        r"second metric's interval and tests are in verdicts.csv); "
        rf"{confidence}\% paired bootstrap interval; $p$: corrected $p$-value of the paired test; "
        rf"MDE: minimal detectable effect at {power}\% power.}}\label{{tab:verdicts}}\\"
    )
    lines = [
        r"{\footnotesize\setlength{\tabcolsep}{3pt}",
        r"\begin{longtable}{@{}l>{\raggedright\arraybackslash}p{3.4cm}cllllll@{}}",
        caption,
        r"\toprule",
        header,
        r"\midrule",
        r"\endfirsthead",
        r"\toprule",
        header,
        r"\midrule",
        r"\endhead",
        r"\bottomrule",
        r"\endlastfoot",
    ]
    for number, claim in enumerate(report["claims"], start=1):
        if not claim["settings"]:
            text = latex_escape(f"{NOT_TESTED}; tested by {claim['tested_by']}")
            lines.append(rf"C{number} & \multicolumn{{8}}{{p{{12cm}}}}{{{text}}} \\")
        lines += [_setting_row(number, setting, metrics, labels) for setting in claim["settings"]]
        if number < len(report["claims"]):
            lines.append(r"\midrule")
    return "\n".join([*lines, r"\end{longtable}}"])


def _percent(share: float) -> str:
    return f"{100 * share:g}"


def claim_list(report: Mapping) -> str:
    items = [
        rf"\item[C{n}] \textbf{{{latex_escape(c['short'])}}} ({latex_escape(c['source'])}; {_relation(c)}). "
        rf"{latex_escape(c['statement'])}"
        for n, c in enumerate(report["claims"], start=1)
    ]
    return "\n".join([r"\begin{description}", *items, r"\end{description}"])


def _relation(claim: Mapping) -> str:
    if claim["relation"] == "=":
        return f"gate gradient norm of A at most {claim['tolerance']:g} in every logged epoch, B the control"
    symbol = {">": "$>$", "~": r"$\approx$", "!=": r"$\neq$"}[claim["relation"]]
    return rf"A {symbol} B, $\delta = {claim['delta']:g}$"


def reproduction_table(records: Sequence[Mapping], labels: Mapping[str, str] | None = None) -> str:
    """The published numbers beside ours, with Effect Ratio and Delta RI (an empty string without any)."""
    if not records:
        return (
            "No published number has a counterpart in this configuration, so the "
            "Effect Ratio and $\\Delta$RI are not computed here."
        )
    header = (
        r"Dataset & $E$ & Metric & Paper FT & Paper SB-MoE & Ours FT & Ours SB-MoE & $\Delta$ FT & "
        r"$\Delta$ SB-MoE & ER & $\Delta$RI \\"
    )
    caption = (
        r"\caption{Reproduction measures against the published expert-count numbers (Breuer et al.'s Effect "
        r"Ratio ER and $\Delta$RI, computed with repro\_eval): $\Delta$ = ours $-$ paper.}\label{tab:repro-measures}\\"
    )
    lines = [
        r"{\footnotesize\setlength{\tabcolsep}{3pt}\begin{longtable}{@{}lllrrrrrrrr@{}}",
        caption,
        r"\toprule",
        header,
        r"\midrule",
        r"\endhead",
        r"\bottomrule",
        r"\endlastfoot",
    ]
    for r in records:
        cells = [
            latex_escape((labels or {}).get(r["testset"], r["dataset"])),
            str(r["experts"]),
            METRIC_LABELS.get(r["metric"], latex_escape(r["metric"])),
            plain(r["paper_ft"]),
            plain(r["paper_moe"]),
            plain(r["ours_ft"]),
            plain(r["ours_moe"]),
            signed(r["difference_ft"]),
            signed(r["difference_moe"]),
            plain(r["effect_ratio"]),
            signed(r["delta_ri"]),
        ]
        lines.append(" & ".join(cells) + r" \\")
    return "\n".join([*lines, r"\end{longtable}}"])


def verdicts_section(report: Mapping, reproduction: Sequence[Mapping], labels: Mapping[str, str] | None = None) -> str:
    """The "Verdicts" section: the rule, the claims, the verdict table and the reproduction measures."""
    alpha = f"{report['alpha']:g}"
    return (
        "\n\n".join(
            [
                "% Generated by sbmoe.analysis.claims.report from verdicts.json. Do not edit.",
                r"\section{Verdicts}\label{sec:verdicts}",
                (
                    r"Each claim compares a system A with a system B in every setting (encoder, training and test set) "
                    rf"the study ran, at significance level $\alpha = {alpha}$. "
                    rf"The rule: {latex_escape(report['rule'])}"
                ),
                claim_list(report),
                verdict_table(report, labels),
                reproduction_table(reproduction, labels),
            ]
        )
        + "\n"
    )


def _verb(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def _settings(count: int) -> str:
    return f"{count} setting" if count == 1 else f"{count} settings"


def _effect(claim: Mapping, metric: str, labels: Mapping[str, str]) -> str:
    """The claim's measured effect on ``metric``: the difference, interval and p-value of its one
    setting, or the range of the differences over its settings ("" for a gate-gradient claim)."""
    found = [
        (setting, setting["metrics"][metric]) for setting in claim["settings"] if metric in setting.get("metrics", {})
    ]
    if not found:
        return ""
    name = METRIC_LABELS.get(metric, latex_escape(metric))
    if len(found) == 1:
        setting, evidence = found[0]
        where = latex_escape(labels.get(setting["testset"], setting["testset"]))
        p = p_text(evidence["p_value"])
        return f" ({where}, $\\Delta$ {name} {_interval(evidence)}, $p$ {p if p.startswith('$') else '= ' + p})"
    differences = [evidence["difference"] for _, evidence in found]
    return f" ($\\Delta$ {name} from {signed(min(differences))} to {signed(max(differences))})"


def abstract_sentences(report: Mapping, labels: Mapping[str, str] | None = None) -> str:
    """The abstract's verdict sentences: the overview, one sentence per tested claim (its verdicts
    and measured effect on the first metric), the untested ones."""
    counts, labels, metric = overview(report), labels or {}, report["metrics"][0]
    sentences = [
        (
            f"Of the paper's {counts['claims']} claims, this configuration tests {counts['tested']} in "
            f"{_settings(counts['settings'])} ({counts['reproductions']} of them reproductions of the original's "
            f"encoder and data; Section~\\ref{{sec:verdicts}}): "
            f"{_verb(counts['holds'], 'holds', 'hold')} in every setting, "
            f"{counts['holds in some settings']} in some and {counts['does not hold']} in none, and "
            f"{_verb(counts['inconclusive'], 'is', 'are')} inconclusive."
        )
    ]
    for claim in report["claims"]:
        if not claim["settings"]:
            continue
        parts = [f"{verdict} in {n}" for verdict, n in claim["counts"].items() if n]
        if len(claim["settings"]) == 1:
            found = f"{claim['settings'][0]['verdict']} in its one setting"
        else:
            found = (
                parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
            ) + f" of {_settings(len(claim['settings']))}"
        short = latex_escape(claim["short"])
        sentences.append(f"{short[0].upper()}{short[1:]}: {found}{_effect(claim, metric, labels)}.")
    untested = [latex_escape(claim["short"]) for claim in report["claims"] if not claim["settings"]]
    if untested:
        sentences.append(
            f"Not tested by this configuration ({_verb(len(untested), 'claim', 'claims')}): "
            + "; ".join(untested)
            + "."
        )
    return (
        "% Generated by sbmoe.analysis.claims.report from verdicts.json. Do not edit.\n" + "\n".join(sentences) + "\n"
    )


def json_ready(value):
    """``value`` with every NaN or infinite number replaced by None (strict JSON has neither)."""
    if isinstance(value, Mapping):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
