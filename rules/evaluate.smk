# Evaluation: every run of a training set's models of one seed (one job, so ranx starts once),
# scored with ranx; one JSON per model.


rule evaluate:
    input:
        runs=STUDY.evaluation_inputs,
        datasets=STUDY.evaluation_datasets,
    output:
        json=[layout.evaluation(system=system) for system in STUDY.systems],
    log:
        layout.log("evaluate"),
    wildcard_constraints:
        trainset="(?!none/)[a-z0-9][a-z0-9-]*",
    conda:
        "../envs/sbmoe.yaml"
    params:
        evaluation=STUDY.evaluation_params,
        metrics=config["evaluation"]["metrics"],
    script:
        "../workflow/scripts/evaluate.py"


rule evaluate_untrained:
    input:
        runs=STUDY.evaluation_inputs,
        datasets=STUDY.evaluation_datasets,
    output:
        json=[layout.evaluation(system="zeroshot")],
    log:
        layout.log("evaluate"),
    wildcard_constraints:
        trainset="none",
        seed="0",
    conda:
        "../envs/sbmoe.yaml"
    params:
        evaluation=STUDY.evaluation_params,
        metrics=config["evaluation"]["metrics"],
    script:
        "../workflow/scripts/evaluate.py"
