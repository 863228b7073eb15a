"""Snakemake script: train one system (encoder x training set x variant x seed).

input.dataset, input.pooled_queries / input.pooled_corpus (empty unless the encoder is frozen),
input.prefix_queries / input.prefix_corpus (empty unless the top N layers are trained over a cache);
params.config (encoder, model, training, seed); output.model (folder), output.log (JSONL).
"""

from sbmoe.config import build_configs
from sbmoe.joblog import log_to
from sbmoe.stages import train_stage

smk = snakemake  # noqa: F821 (set by Snakemake)
with log_to(smk.log[0]):
    model, training = build_configs(smk.params.config, source="config.yaml")
    train_stage(smk.input.dataset, model, training, smk.output.model, smk.output.log,
                pooled_queries=smk.input.get("pooled_queries") or None,
                pooled_corpus=list(smk.input.get("pooled_corpus", [])) or None,
                prefix_queries=smk.input.get("prefix_queries") or None,
                prefix_corpus=list(smk.input.get("prefix_corpus", [])) or None)
