# Claim-by-claim verdicts (workflow/claims.yaml): evidence, verdict per claim and setting, the
# paper's "Verdicts" section and the abstract's sentences.


localrules:
    verdicts,


rule verdicts:
    input:
        claims="workflow/claims.yaml",
        schema="workflow/schemas/claims.schema.yaml",
        evals=[path for path, _ in EVALS],
        significance=layout.SIGNIFICANCE,
        reference="workflow/reference_numbers.yaml",
        logs=[path for _, path in STUDY.gate_logs()],
        routing=[evaluation for _, evaluation, _ in router_records()],
        routing_significance=([layout.ROUTING_SIGNIFICANCE] if STUDY.routing.trainsets else []),
    output:
        json=layout.VERDICTS,
        csv=report(
            "results/analysis/verdicts.csv",
            category="Tables",
            caption="../workflow/report/verdicts.rst",
        ),
        tex=layout.VERDICTS_SECTION,
        abstract=layout.VERDICTS_ABSTRACT,
    log:
        "logs/analysis/verdicts.log",
    conda:
        "../envs/sbmoe.yaml"
    params:
        eval_keys=[keys for _, keys in EVALS],
        log_keys=[keys for keys, _ in STUDY.gate_logs()],
        encoders={key: spec["name_or_path"] for key, spec in config["encoders"].items()},
        in_domain=config["in_domain"],
        zero_shot=config.get("zero_shot", {}),
        significance=dict(
            test=SIGNIFICANCE.get("test", "randomization"),
            correction=SIGNIFICANCE.get("correction", "bonferroni"),
            alpha=SIGNIFICANCE.get("alpha", 0.01),
            permutations=SIGNIFICANCE.get("permutations", 10000),
            seed=0,
        ),
        dataset_labels=DATASET_LABELS,
        routing_trainsets=[trainset for trainset, _, _ in router_records()],
        routing_encoder=STUDY.routing.encoder,
        routing_experts=ROUTING_EXPERTS,
        reproduction=dict(encoder=next(iter(config["encoders"])), combination="paper", pooling="top1"),
    script:
        "../workflow/scripts/verdicts.py"
