# Datasets: export to BEIR layout (or stage a local copy), with a seeded validation split.
# Downloads run on the submitting node: cluster compute nodes often have no internet.


localrules:
    export_dataset,
    dataset_stats,


rule export_dataset:
    output:
        folder=directory(layout.dataset()),
    log:
        layout.log("export_dataset"),
    conda:
        "../envs/sbmoe.yaml"
    params:
        table=config["datasets"]["table"],
        mirror=config["datasets"].get("mirror", ""),
        valid_fraction=config["datasets"].get("valid_fraction", 0.05),
        seed=config["datasets"].get("split_seed", 42),
    script:
        "../workflow/scripts/export_dataset.py"


rule dataset_stats:
    input:
        folders=[layout.dataset(name) for name in STUDY.all_datasets()],
    output:
        json=layout.DATASET_STATS,
        tex=layout.table("dataset_stats", "tex"),
        csv=layout.table("dataset_stats", "csv"),
    log:
        layout.log("dataset_stats"),
    conda:
        "../envs/sbmoe.yaml"
    params:
        names=STUDY.all_datasets(),
    script:
        "../workflow/scripts/dataset_stats.py"
