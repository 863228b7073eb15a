# Analysis: significance tests, the paper's tables (booktabs LaTeX + CSV) and figures (PDF + PNG).


localrules:
    significance,
    table_in_domain,
    table_zero_shot,
    table_reproduction,
    table_experts,
    figure_expert_count,
    figure_tsne,
    figure_training,
    paper_macros,
    table_routing,
    figure_routing,


EVALS = evaluation_records()
ROUTING = routing_records()
TSNE = tsne_panels()
CURVES = curve_records()
# the text's training numbers: the curves' logs and every SB-MoE model's (all seeds, as the verdicts read)
MACRO_LOGS = list({path: (keys, path) for keys, path in [*CURVES, *STUDY.gate_logs()]}.values())
SIGNIFICANCE = config["significance"]
REPORTED_METRICS = config["analysis"]["metrics"]  # the first is the headline metric


rule significance:
    input:
        evals=[path for path, _ in EVALS],
    output:
        json="results/analysis/significance.json",
    log:
        "logs/analysis/significance.log",
    conda:
        "../envs/sbmoe.yaml"
    params:
        eval_keys=[keys for _, keys in EVALS],
        metrics=REPORTED_METRICS,
        baseline="finetune",
        test=SIGNIFICANCE.get("test", "randomization"),
        correction=SIGNIFICANCE.get("correction", "bonferroni"),
        alpha=SIGNIFICANCE.get("alpha", 0.01),
        permutations=SIGNIFICANCE.get("permutations", 10000),
        seed=0,
    script:
        "../workflow/scripts/significance.py"


rule table_in_domain:
    input:
        evals=[path for path, _ in EVALS],
        significance="results/analysis/significance.json",
    output:
        tex="results/analysis/tables/in_domain.tex",
        csv=report(
            "results/analysis/tables/in_domain.csv", category="Tables", caption="../workflow/report/in_domain.rst"
        ),
    log:
        "logs/analysis/table_in_domain.log",
    conda:
        "../envs/sbmoe.yaml"
    params:
        table="in_domain",
        metrics=REPORTED_METRICS,
        eval_keys=[keys for _, keys in EVALS],
        datasets=in_domain_pairs(),
        dataset_labels=DATASET_LABELS,
    script:
        "../workflow/scripts/tables.py"


rule table_zero_shot:
    input:
        evals=[path for path, _ in EVALS],
        significance="results/analysis/significance.json",
    output:
        tex="results/analysis/tables/zero_shot.tex",
        csv=report(
            "results/analysis/tables/zero_shot.csv", category="Tables", caption="../workflow/report/zero_shot.rst"
        ),
    log:
        "logs/analysis/table_zero_shot.log",
    conda:
        "../envs/sbmoe.yaml"
    params:
        table="zero_shot",
        metrics=REPORTED_METRICS[:1],
        eval_keys=[keys for _, keys in EVALS],
        trainset=zero_shot_trainset(),
        testsets=config["zero_shot"][zero_shot_trainset()],
        dataset_labels=DATASET_LABELS,
    script:
        "../workflow/scripts/tables.py"


rule table_reproduction:
    input:
        evals=[path for path, _ in EVALS],
        reference="workflow/reference_numbers.yaml",
    output:
        tex="results/analysis/tables/reproduction.tex",
        csv=report(
            "results/analysis/tables/reproduction.csv",
            category="Tables",
            caption="../workflow/report/reproduction.rst",
        ),
    log:
        "logs/analysis/table_reproduction.log",
    conda:
        "../envs/sbmoe.yaml"
    params:
        table="reproduction",
        metrics=REPORTED_METRICS,
        eval_keys=[keys for _, keys in EVALS],
        datasets=in_domain_pairs(),
        encoder=next(iter(config["encoders"])),
        combination="paper",
        pooling="top1",
        dataset_labels=DATASET_LABELS,
    script:
        "../workflow/scripts/tables.py"


rule table_experts:
    input:
        queries=[queries for _, queries, _ in ROUTING],
        corpus=[shard for _, _, shards in ROUTING for shard in shards],
    output:
        tex="results/analysis/tables/experts.tex",
        csv=report("results/analysis/tables/experts.csv", category="Tables", caption="../workflow/report/experts.rst"),
    log:
        "logs/analysis/table_experts.log",
    conda:
        "../envs/sbmoe.yaml"
    params:
        table="experts",
        npz_keys=[keys for keys, _, _ in ROUTING],
        corpus_shards=[len(shards) for _, _, shards in ROUTING],
        dataset_labels=DATASET_LABELS,
    script:
        "../workflow/scripts/tables.py"


rule figure_expert_count:
    input:
        evals=[path for path, _ in EVALS],
    output:
        pdf=report(
            "results/analysis/figures/expert_count.pdf",
            category="Figures",
            caption="../workflow/report/expert_count.rst",
        ),
        png="results/analysis/figures/expert_count.png",
        json="results/analysis/figures/expert_count.json",
    log:
        "logs/analysis/figure_expert_count.log",
    conda:
        "../envs/sbmoe.yaml"
    params:
        eval_keys=[keys for _, keys in EVALS],
        datasets=in_domain_pairs(),
        encoder=next(iter(config["encoders"])),
        combination="paper",
        pooling="top1",
        metrics=REPORTED_METRICS,
        dataset_labels=DATASET_LABELS,
    script:
        "../workflow/scripts/figure_expert_count.py"


rule figure_tsne:
    input:
        runs=[runs for _, runs, _, _ in TSNE],
        queries=[queries for _, _, queries, _ in TSNE],
        corpus=[shard for _, _, _, shards in TSNE for shard in shards],
        qrels=layout.dataset(config["analysis"]["tsne"]["testset"]),
    output:
        pdf=report("results/analysis/figures/tsne.pdf", category="Figures", caption="../workflow/report/tsne.rst"),
        png="results/analysis/figures/tsne.png",
        json="results/analysis/figures/tsne.json",
    log:
        "logs/analysis/figure_tsne.log",
    conda:
        "../envs/sbmoe.yaml"
    params:
        labels=["FT", "SB-MoE"],
        poolings=[keys["pooling"] for keys, _, _, _ in TSNE],
        corpus_shards=[len(shards) for _, _, _, shards in TSNE],
        seed=config["analysis"]["tsne"].get("query_seed", 0),
        depth=1000,
        min_grade=DATASETS[config["analysis"]["tsne"]["testset"]].relevance_threshold,
        perplexity=30,
    script:
        "../workflow/scripts/figure_tsne.py"


rule figure_training:
    input:
        logs=[path for _, path in CURVES],
    output:
        pdf=report(
            "results/analysis/figures/training_curves.pdf",
            category="Figures",
            caption="../workflow/report/training_curves.rst",
        ),
        png="results/analysis/figures/training_curves.png",
        json="results/analysis/figures/training_curves.json",
    log:
        "logs/analysis/figure_training.log",
    conda:
        "../envs/sbmoe.yaml"
    params:
        labels=[keys["system"] for keys, _ in CURVES],
    script:
        "../workflow/scripts/figure_training.py"


rule table_routing:
    input:
        evals=[evaluation for _, evaluation, _ in router_records()],
        bm25_reference="workflow/bm25_reference.yaml",
    output:
        tex="results/analysis/tables/routing.tex",
        csv=report("results/analysis/tables/routing.csv", category="Tables", caption="../workflow/report/routing.rst"),
        significance="results/analysis/routing_significance.json",
    log:
        "logs/analysis/table_routing.log",
    conda:
        "../envs/sbmoe.yaml"
    params:
        table="routing",
        metrics=REPORTED_METRICS,
        trainsets=[trainset for trainset, _, _ in router_records()],
        experts=ROUTING_EXPERTS,
        pairs=router_pairs(),
        significance=dict(
            test=SIGNIFICANCE.get("test", "randomization"),
            correction=SIGNIFICANCE.get("correction", "bonferroni"),
            alpha=SIGNIFICANCE.get("alpha", 0.01),
            permutations=SIGNIFICANCE.get("permutations", 10000),
            seed=0,
        ),
        dataset_labels=DATASET_LABELS,
    script:
        "../workflow/scripts/tables.py"


rule figure_routing:
    input:
        choices=[choices for _, _, choices in router_records()],
    output:
        pdf=report(
            "results/analysis/figures/routing.pdf", category="Figures", caption="../workflow/report/routing_figure.rst"
        ),
        png="results/analysis/figures/routing.png",
        json="results/analysis/figures/routing.json",
    log:
        "logs/analysis/figure_routing.log",
    conda:
        "../envs/sbmoe.yaml"
    params:
        trainsets=[trainset for trainset, _, _ in router_records()],
        pairs=router_pairs(),
        dataset_labels=DATASET_LABELS,
    script:
        "../workflow/scripts/figure_routing.py"


rule paper_macros:
    input:
        unpack(routing_macro_inputs),
        in_domain="results/analysis/tables/in_domain.csv",
        zero_shot="results/analysis/tables/zero_shot.csv",
        reproduction="results/analysis/tables/reproduction.csv",
        experts="results/analysis/tables/experts.csv",
        significance="results/analysis/significance.json",
        tsne="results/analysis/figures/tsne.json",
        logs=[path for _, path in MACRO_LOGS],
    output:
        tex="results/analysis/macros.tex",
    log:
        "logs/analysis/paper_macros.log",
    conda:
        "../envs/sbmoe.yaml"
    params:
        log_keys=[keys for keys, _ in MACRO_LOGS],
        metrics=REPORTED_METRICS,
        benchmarks=DATASET_BENCHMARKS,
        dataset_labels=DATASET_LABELS,
        training=STUDY.training_settings(),
    script:
        "../workflow/scripts/paper_macros.py"
