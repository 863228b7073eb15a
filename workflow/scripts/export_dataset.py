"""Snakemake script: export one dataset of workflow/datasets.yaml to BEIR layout.

Reads ``snakemake.wildcards.dataset``, ``snakemake.params.table`` (path of datasets.yaml),
``snakemake.params.mirror`` (a local mirror folder, or empty), ``snakemake.params.valid_fraction``
and ``snakemake.params.seed``; writes the folder ``snakemake.output.folder`` (and, for a dataset
with a train split, its ``qrels/valid.tsv``); logs (and progress bars) go to ``snakemake.log[0]``.
"""

from sbmoe.data.datasets import export_dataset, write_validation_split
from sbmoe.data.table import load_table
from sbmoe.pipeline.joblog import log_to


def main(smk) -> None:
    name = smk.wildcards.dataset
    table = load_table(smk.params.table)
    folder = export_dataset(name, table, smk.output.folder, mirror=smk.params.mirror or None)
    if "train" in table[name].splits:
        write_validation_split(folder, fraction=float(smk.params.valid_fraction), seed=int(smk.params.seed))


with log_to(snakemake.log[0]):  # noqa: F821 (set by Snakemake)
    main(snakemake)  # noqa: F821
