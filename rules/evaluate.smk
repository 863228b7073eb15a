# Evaluation: every run of a training set's models of one seed (one job, so ranx starts once),
# scored with ranx; one JSON per model.


rule evaluate:
    wildcard_constraints:
        trainset="(?!none/)[a-z0-9][a-z0-9-]*",
    input:
        runs=evaluation_inputs,
        datasets=evaluation_datasets,
    output:
        json=[f"results/eval/{{encoder}}/{{trainset}}/{system}/seed{{seed}}.json" for system in systems()],
    log:
        "logs/evaluate/{encoder}/{trainset}/seed{seed}.log",
    params:
        evaluation=evaluation_params,
        metrics=config["evaluation"]["metrics"],
    conda:
        "../envs/sbmoe.yaml"
    script:
        "../workflow/scripts/evaluate.py"


rule evaluate_untrained:
    wildcard_constraints:
        trainset="none",
        seed="0",
    input:
        runs=evaluation_inputs,
        datasets=evaluation_datasets,
    output:
        json=["results/eval/{encoder}/{trainset}/zeroshot/seed{seed}.json"],
    log:
        "logs/evaluate/{encoder}/{trainset}/seed{seed}.log",
    params:
        evaluation=evaluation_params,
        metrics=config["evaluation"]["metrics"],
    conda:
        "../envs/sbmoe.yaml"
    script:
        "../workflow/scripts/evaluate.py"
