# Evaluation: every run of a training set's models of one seed (one job, so ranx starts once),
# scored with ranx; one JSON per model.


rule evaluate:
    wildcard_constraints:
        trainset="(?!none/)[a-z0-9][a-z0-9-]*",
    input:
        runs=STUDY.evaluation_inputs,
        datasets=STUDY.evaluation_datasets,
    output:
        json=[layout.evaluation(system=system) for system in STUDY.systems],
    log:
        layout.log("evaluate"),
    params:
        evaluation=STUDY.evaluation_params,
        metrics=config["evaluation"].get("metrics", ["ndcg@10", "recall@100"]),
    conda:
        "../envs/sbmoe.yaml"
    script:
        "../workflow/scripts/evaluate.py"


rule evaluate_untrained:
    wildcard_constraints:
        trainset="none",
        seed="0",
    input:
        runs=STUDY.evaluation_inputs,
        datasets=STUDY.evaluation_datasets,
    output:
        json=[layout.evaluation(system="zeroshot")],
    log:
        layout.log("evaluate"),
    params:
        evaluation=STUDY.evaluation_params,
        metrics=config["evaluation"].get("metrics", ["ndcg@10", "recall@100"]),
    conda:
        "../envs/sbmoe.yaml"
    script:
        "../workflow/scripts/evaluate.py"
