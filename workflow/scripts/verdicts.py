"""Claim-by-claim verdicts (``sbmoe.analysis.claims.verdicts``) and their report (``sbmoe.analysis.claims.report``).

Snakemake contract
------------------
input.claims               workflow/claims.yaml; input.schema its JSON schema
input.evals                list of evaluation JSONs; params.eval_keys one key dict per entry
input.significance         the significance report (significance.py)
input.reference            workflow/reference_numbers.yaml
input.logs                 training logs of the gated systems; params.log_keys one key dict per entry
input.routing              routing evaluations (one per params.routing_trainsets entry; may be empty)
input.routing_significance routing significance report (absent without routing)
params.encoders            {encoder key: name_or_path}
params.in_domain, params.zero_shot   {trainset: [testsets]}
params.significance        {test, correction, alpha, permutations, seed}
params.dataset_labels      {dataset id: label}
params.routing_encoder, params.routing_experts
params.reproduction        {encoder, combination, pooling}: whose numbers face the published ones
output.json, output.csv, output.tex (the "Verdicts" section), output.abstract (the abstract's sentences)
log[0]                     the job's log
"""

import logging

from sbmoe.analysis.claims.report import (
    abstract_sentences,
    json_ready,
    overview,
    verdict_rows,
    verdicts_section,
)
from sbmoe.analysis.claims.reproduction import reproduction_measures
from sbmoe.analysis.claims.verdicts import Scores, Study, load_claims, study_verdicts
from sbmoe.analysis.tables.reproduction import load_reference
from sbmoe.evaluation.results import load_results
from sbmoe.io.atomic import write_json, write_text
from sbmoe.io.errors import read_json
from sbmoe.pipeline.joblog import log_to

smk = snakemake  # noqa: F821 (set by Snakemake)
inputs, params = smk.input, smk.params
with log_to(smk.log[0]):
    claims = load_claims(inputs.claims, inputs.schema)
    study = Study(
        params.encoders,
        params.in_domain,
        params.zero_shot,
        params.significance,
        params.dataset_labels,
        params.routing_encoder,
    )
    results = load_results(zip(params.eval_keys, inputs.evals, strict=True))
    routing = {
        trainset: read_json(path, "routing evaluations in JSON")
        for trainset, path in zip(params.routing_trainsets, inputs.routing, strict=True)
    }
    routing_significance = [read_json(path, "a significance report in JSON") for path in inputs.routing_significance]
    report = study_verdicts(
        claims,
        study,
        Scores(results),
        significance=read_json(inputs.significance, "a significance report in JSON"),
        routing=routing,
        routing_significance=(routing_significance or [None])[0],
        routing_experts=params.routing_experts,
        logs=list(zip(params.log_keys, inputs.logs, strict=True)),
        progress=logging.getLogger("verdicts").info,
    )
    pairs = [(train, test) for train, tests in params.in_domain.items() for test in tests]
    report["reproduction"] = reproduction_measures(
        results, load_reference(inputs.reference), pairs, dataset_labels=params.dataset_labels, **params.reproduction
    )
    report["overview"] = overview(report)
    report = json_ready(report)  # the JSON is what the CSV and the LaTeX are made from
    write_json(smk.output.json, report)
    write_text(smk.output.csv, verdict_rows(report).to_csv(index=False))
    write_text(smk.output.tex, verdicts_section(report, report["reproduction"], params.dataset_labels))
    write_text(smk.output.abstract, abstract_sentences(report, params.dataset_labels))
