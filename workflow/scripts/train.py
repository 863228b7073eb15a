"""Snakemake script: train systems (encoder x training set x variant x seed), one after another.

input.dataset, input.pooled_queries / input.pooled_corpus (empty unless the encoder is frozen),
input.prefix_queries / input.prefix_corpus (empty unless the top N layers are trained over a cache);
params.configs (per system: encoder, model, training, seed); output.model[i] (folder) and
output.log[i] (JSONL) for configs[i].
"""

from sbmoe.pipeline.config import build_configs
from sbmoe.pipeline.joblog import log_to
from sbmoe.pipeline.stages import train_stage

smk = snakemake  # noqa: F821 (set by Snakemake)
with log_to(smk.log[0]):
    for config, model_dir, log in zip(smk.params.configs, smk.output.model, smk.output.log, strict=True):
        model, training = build_configs(config, source=f"the study's configuration (the settings of {model_dir})")
        train_stage(
            smk.input.dataset,
            model,
            training,
            model_dir,
            log,
            pooled_queries=smk.input.get("pooled_queries") or None,
            pooled_corpus=list(smk.input.get("pooled_corpus", [])) or None,
            prefix_queries=smk.input.get("prefix_queries") or None,
            prefix_corpus=list(smk.input.get("prefix_corpus", [])) or None,
        )
