# Routing over whole retrievers (config['routing']): BM25 (PISA) and the dense experts' runs on the
# router's held-out split and on every test set; the router trained on the split; routing, fusion
# and the oracle on the test sets. The table and figure are in rules/analysis.smk.

rule bm25:
    input:
        dataset=dataset_input,
    output:
        index=directory("results/bm25/{dataset}/index"),
        runs=directory("results/bm25/{dataset}/runs"),
    log:
        "logs/bm25/{dataset}.log",
    benchmark:
        "benchmarks/bm25/{dataset}.tsv"
    params:
        splits=bm25_splits,
        bm25=ROUTING_CONFIG.get("bm25", {}),
        k=config["search"].get("k", 1000),
    conda:
        "../envs/sbmoe.yaml"
    script:
        "../workflow/scripts/bm25.py"


rule search_split:
    input:
        unpack(split_search_inputs),
    output:
        queries=[temp(directory(f"results/routing/encoded/{MODEL}/{{dataset}}/{{split}}/queries"))],
        runs=[directory(f"results/routing/dense/{MODEL}/{{dataset}}/{{split}}")],
        **({"corpus": [temp(directory(f"results/routing/encoded/{MODEL}/{{dataset}}/{{split}}/corpus"))]} if FROZEN else {}),
    log:
        f"logs/routing/search/{MODEL}/{{dataset}}-{{split}}.log",
    benchmark:
        f"benchmarks/routing/search/{MODEL}/{{dataset}}-{{split}}.tsv"
    params:
        split="{split}",
        models=split_search_params,
        batch_size=config["encoding"].get("batch_size", 128),
        k=config["search"].get("k", 1000),
    resources:
        gpu=1,
    conda:
        "../envs/sbmoe.yaml"
    script:
        "../workflow/scripts/search.py"


rule train_router:
    input:
        unpack(router_inputs),
    output:
        router=directory(f"{ROUTER}/router"),
    log:
        f"logs/routing/{{encoder}}/{{trainset}}/train_router.log",
    params:
        experts=ROUTING_EXPERTS,
        split=router_params,
        router=ROUTING_CONFIG.get("router", {}),
        wsum_step=ROUTING_CONFIG.get("wsum_step", 0.1),
    conda:
        "../envs/sbmoe.yaml"
    script:
        "../workflow/scripts/train_router.py"


rule route:
    input:
        unpack(route_inputs),
    output:
        runs=directory(f"{ROUTER}/runs"),
        evaluation=f"{ROUTER}/eval.json",
        choices=f"{ROUTER}/choices.json",
    log:
        f"logs/routing/{{encoder}}/{{trainset}}/route.log",
    params:
        testsets=route_params,
        metrics=config["evaluation"]["metrics"],
        k=config["search"].get("k", 1000),
        tag="{encoder}-{trainset}",
    conda:
        "../envs/sbmoe.yaml"
    script:
        "../workflow/scripts/route.py"
