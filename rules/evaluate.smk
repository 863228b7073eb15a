# Evaluation: every run of a model on each of its test sets, scored with ranx.


rule evaluate:
    input:
        runs=evaluation_inputs,
        datasets=evaluation_datasets,
    output:
        json=f"results/eval/{MODEL}.json",
    log:
        f"logs/evaluate/{MODEL}.log",
    params:
        evaluation=evaluation_params,
        poolings=system_poolings,
        metrics=config["evaluation"].get("metrics", ["ndcg@10", "recall@100"]),
    conda:
        "../envs/sbmoe.yaml"
    script:
        "../workflow/scripts/evaluate.py"
