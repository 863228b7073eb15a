"""Snakemake script: save an encoder as an untrained model (the zero-shot system and the base of
the pooled caches). params.config: the configuration dict (encoder, model, seed; no training
settings, which do not change the untrained encoder)."""

from sbmoe.pipeline.config import build_configs
from sbmoe.pipeline.joblog import log_to
from sbmoe.pipeline.stages import init_stage

with log_to(snakemake.log[0]):  # noqa: F821 (set by Snakemake)
    output = snakemake.output.model  # noqa: F821
    model, _ = build_configs(snakemake.params.config, source=f"the study's configuration (the settings of {output})")  # noqa: F821
    init_stage(model, output)
