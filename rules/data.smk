# Datasets: export to BEIR layout (or stage a local copy), with a seeded validation split.
# Downloads run on the submitting node: cluster compute nodes often have no internet.


localrules:
    export_dataset,
    dataset_stats,


rule export_dataset:
    output:
        folder=directory("resources/datasets/{dataset}"),
    log:
        "logs/datasets/{dataset}.log",
    params:
        table=config["datasets"]["table"],
        mirror=config["datasets"].get("mirror", ""),
        valid_fraction=config["datasets"].get("valid_fraction", 0.05),
        seed=config["datasets"].get("split_seed", 42),
    conda:
        "../envs/sbmoe.yaml"
    script:
        "../workflow/scripts/export_dataset.py"


rule dataset_stats:
    input:
        folders=[dataset_folder(name) for name in all_datasets()],
    output:
        json="results/analysis/dataset_stats.json",
        tex="results/analysis/tables/dataset_stats.tex",
        csv="results/analysis/tables/dataset_stats.csv",
    log:
        "logs/analysis/dataset_stats.log",
    params:
        names=all_datasets(),
    conda:
        "../envs/sbmoe.yaml"
    script:
        "../workflow/scripts/dataset_stats.py"
