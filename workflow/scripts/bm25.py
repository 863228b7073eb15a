"""Snakemake script: a dataset's BM25 index (PISA) and the BM25 runs of the splits routing needs.

input.dataset; params.splits (qrels splits to run), params.bm25 ({k1, b, stemmer}, defaults
otherwise), params.k; output.index (the PISA index folder), output.runs (a folder of <split>.trec).
"""

from sbmoe.pipeline.joblog import log_to
from sbmoe.retrieval.bm25 import BM25Config, bm25_stage

smk = snakemake  # noqa: F821 (set by Snakemake)
with log_to(smk.log[0]):
    bm25_stage(
        smk.input.dataset,
        smk.output.index,
        smk.output.runs,
        list(smk.params.splits),
        BM25Config(**smk.params.bm25),
        k=smk.params.k,
        tag="bm25",
    )
