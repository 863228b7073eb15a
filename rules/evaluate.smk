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
        metrics=config["evaluation"].get("metrics", ["ndcg@10", "recall@100"]),
    conda:
        "../envs/sbmoe.yaml"
    script:
        "../workflow/scripts/evaluate.py"


rule evaluate_untrained:
    input:
        runs=evaluation_inputs,
        datasets=evaluation_datasets,
    output:
        json=["results/eval/{encoder}/none/zeroshot/seed0.json"],
    log:
        "logs/evaluate/{encoder}/none/seed0.log",
    params:
        evaluation=evaluation_params,
        metrics=config["evaluation"].get("metrics", ["ndcg@10", "recall@100"]),
    conda:
        "../envs/sbmoe.yaml"
    script:
        "../workflow/scripts/evaluate.py"
