"""Snakemake script: export one dataset of workflow/datasets.yaml to BEIR layout.

Reads ``snakemake.wildcards.dataset``, ``snakemake.params.table`` (path of datasets.yaml),
``snakemake.params.mirror`` (a local mirror folder, or empty), ``snakemake.params.valid_fraction``
and ``snakemake.params.seed``; writes the folder ``snakemake.output.folder`` (and, for a dataset
with a train split, its ``qrels/valid.tsv``); logs (and progress bars) go to ``snakemake.log[0]``.
"""

import logging
import sys

from sbmoe.datasets import export_dataset, load_table, write_validation_split


def main(smk) -> None:
    name = smk.wildcards.dataset
    table = load_table(smk.params.table)
    folder = export_dataset(name, table, smk.output.folder, mirror=smk.params.mirror or None)
    if "train" in table[name].splits:
        write_validation_split(folder, fraction=float(smk.params.valid_fraction), seed=int(smk.params.seed))


with open(snakemake.log[0], "w", encoding="utf-8") as log_file:  # noqa: F821 (set by Snakemake)
    sys.stderr = log_file
    logging.basicConfig(stream=log_file, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        main(snakemake)  # noqa: F821
    except Exception:
        logging.exception("exporting %s failed", snakemake.wildcards.dataset)  # noqa: F821
        raise
    finally:
        sys.stderr = sys.__stderr__
