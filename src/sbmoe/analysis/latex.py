"""LaTeX text of the paper's tables and macros: escaping, number formatting, booktabs tabulars and their headers."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sbmoe.io.atomic import write_text

MISSING = "--"
_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


@dataclass
class Table:
    """A LaTeX tabular and the tidy DataFrame of the numbers it shows.

    ``latex`` is a bare ``tabular`` (no float wrapper, so the paper ``\\input``s it inside its own
    ``table`` environment with its own caption); ``frame`` holds the numbers behind it, one row per
    cell, unrounded.
    """

    latex: str
    frame: pd.DataFrame

    def write(self, tex_path: str | Path, csv_path: str | Path) -> None:
        """Write the tabular and the CSV, each atomically."""
        write_text(tex_path, self.latex)
        write_text(csv_path, self.frame.to_csv(index=False))


def latex_escape(text: object) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return "".join(_LATEX_SPECIALS.get(char, char) for char in str(text))


def format_score(value: float, digits: int = 3) -> str:
    """A score in [0, 1] as the tables print it: ``.244``; ``--`` when missing."""
    if value is None or math.isnan(value):
        return MISSING
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("0.") else text


def format_difference(value: float, digits: int = 3) -> str:
    """A signed difference as LaTeX text: ``+.007``, ``$-$.003``; ``--`` when missing."""
    if value is None or math.isnan(value):
        return MISSING
    magnitude = format_score(abs(value), digits)
    sign = "+" if round(value, digits) >= 0 else "$-$"
    return sign + magnitude


def format_text_score(value: float) -> str:
    """A score in the text: three decimals (``0.244``); ``--`` when missing."""
    return MISSING if value is None or math.isnan(value) else f"{value:.3f}"


def format_quantity(value: float) -> str:
    """A non-negative quantity such as a gradient norm: ``0`` when exactly zero, scientific
    notation below 0.01, three significant digits otherwise; ``--`` when missing."""
    if value is None or math.isnan(value):
        return MISSING
    if value == 0:
        return "0"
    if abs(value) < 0.01:
        mantissa, exponent = f"{value:.1e}".split("e")
        return rf"${mantissa}\times10^{{{int(exponent)}}}$"
    return f"{value:.3g}"


def score_cell(mean: float, std: float, seeds: int, bold: bool, dagger: bool, digits: int) -> str:
    """A table cell: the mean (bold when best, a dagger when significant), ``± std`` with several seeds
    (at the table's own size: the paper sets no table below footnotesize)."""
    if mean is None or math.isnan(mean):
        return MISSING
    text = format_score(mean, digits)
    if bold:
        text = rf"\textbf{{{text}}}"
    if dagger:
        text += r"$^{\dagger}$"
    if seeds > 1:
        text += rf"\,$\pm${format_score(std, digits)}"
    return text


def best_flags(values: Sequence[float], digits: int) -> list[bool]:
    """Which values equal the maximum at the printed precision."""
    rounded = [round(v, digits) if not math.isnan(v) else -math.inf for v in values]
    best = max(rounded, default=-math.inf)
    return [r == best and best > -math.inf for r in rounded]


def row(cells: Iterable[str]) -> str:
    """One tabular row."""
    return " & ".join(cells) + r" \\"


def spanning_header(leading: Sequence[str], groups: Sequence[tuple[str, int]]) -> list[str]:
    """A header row of column groups, each label centred over its span and ruled below with booktabs'
    ``\\cmidrule``: ``leading`` cells (the row-label columns) first, then ``(label, span)`` per group."""
    first = len(leading) + 1
    cells = [rf"\multicolumn{{{span}}}{{c}}{{{label}}}" for label, span in groups]
    rules, start = [], first
    for _, span in groups:
        rules.append(rf"\cmidrule(lr){{{start}-{start + span - 1}}}")
        start += span
    return [row([*leading, *cells]), "".join(rules)]


def tabular(columns: str, header: Sequence[str], blocks: Sequence[Sequence[str]]) -> str:
    """A booktabs tabular: the header lines, then the blocks of rows separated by ``\\midrule``."""
    lines = [rf"\begin{{tabular}}{{{columns}}}", r"\toprule", *header, r"\midrule"]
    for number, block in enumerate(blocks):
        if number:
            lines.append(r"\midrule")
        lines.extend(block)
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def stacked(label: str) -> str:
    """A long system label broken into lines for a column header (``E=...`` and ``(...)`` apart)."""
    parts = [latex_escape(part) for part in re.split(r" (?=E=|\()", label)]
    if len(parts) == 1:
        return parts[0]
    return r"\begin{tabular}[b]{@{}c@{}}" + r"\\".join(parts) + r"\end{tabular}"


def join_words(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
