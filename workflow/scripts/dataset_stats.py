"""Snakemake script: statistics of the exported datasets, as JSON, a LaTeX table and CSV.

Reads ``snakemake.input.folders`` (BEIR folders) and ``snakemake.params.names`` (same order);
writes ``snakemake.output.json``, ``snakemake.output.tex`` and ``snakemake.output.csv``.
"""

from sbmoe.analysis.tables.dataset_stats import statistics_table, write_statistics_csv
from sbmoe.data.statistics import dataset_statistics
from sbmoe.io.atomic import write_json, write_text

folders = list(snakemake.input.folders)  # noqa: F821 (set by Snakemake)
names = list(snakemake.params.names)  # noqa: F821
if len(folders) != len(names):
    raise ValueError(f"{len(folders)} dataset folders but {len(names)} names")
stats = {name: dataset_statistics(folder) for name, folder in zip(names, folders)}
write_json(snakemake.output.json, stats)  # noqa: F821
write_text(snakemake.output.tex, statistics_table(stats))  # noqa: F821
write_statistics_csv(snakemake.output.csv, stats)  # noqa: F821
