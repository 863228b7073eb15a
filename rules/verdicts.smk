# Claim-by-claim verdicts (workflow/claims.yaml): evidence, verdict per claim and setting, the
# paper's "Verdicts" section and the abstract's sentences.


localrules:
    verdicts,


def verdict_logs():
    """(keys, path) of the training log of every SB-MoE system (their gate gradient norms)."""
    return [
        (m, f"results/models/{MODEL}/train_log.jsonl".format(**m))
        for m in models()
        if parse_system(m["system"])["variant"] == "sbmoe"
    ]


rule verdicts:
    input:
        claims="workflow/claims.yaml",
        schema="workflow/schemas/claims.schema.yaml",
        evals=[path for path, _ in EVALS],
        significance="results/analysis/significance.json",
        reference="workflow/reference_numbers.yaml",
        logs=[path for _, path in verdict_logs()],
        routing=[evaluation for _, evaluation, _ in router_records()],
        routing_significance=(
            ["results/analysis/routing_significance.json"] if ROUTED_SETS else []
        ),
    output:
        json="results/analysis/verdicts.json",
        csv=report(
            "results/analysis/verdicts.csv",
            category="Tables",
            caption="../workflow/report/verdicts.rst",
        ),
        tex="results/analysis/verdicts.tex",
        abstract="results/analysis/verdicts_abstract.tex",
    log:
        "logs/analysis/verdicts.log",
    conda:
        "../envs/sbmoe.yaml"
    params:
        eval_keys=[keys for _, keys in EVALS],
        log_keys=[keys for keys, _ in verdict_logs()],
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
        routing_encoder=ROUTING_ENCODER,
        routing_experts=ROUTING_EXPERTS,
        reproduction=dict(
            encoder=next(iter(config["encoders"])), combination="paper", pooling="top1"
        ),
    script:
        "../workflow/scripts/verdicts.py"
