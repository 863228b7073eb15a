# Routing over whole retrievers (config['routing']): BM25 (PISA) and the dense experts' runs on the
# router's held-out split and on every test set; the router trained on the split; routing, fusion
# and the oracle on the test sets. The table and figure are in rules/analysis.smk.


rule bm25:
    input:
        dataset=dataset_input,
    output:
        index=directory(layout.bm25("index")),
        runs=directory(layout.bm25("runs")),
    log:
        layout.log("bm25"),
    benchmark:
        layout.benchmark("bm25")
    conda:
        "../envs/sbmoe.yaml"
    params:
        splits=STUDY.routing.bm25_splits,
        bm25=STUDY.routing.settings.get("bm25", {}),
        k=config["search"].get("k", 1000),
    script:
        "../workflow/scripts/bm25.py"


rule search_split:
    input:
        unpack(STUDY.routing.split_search_inputs),
    output:
        **({"corpus": [temp(directory(layout.split_encoded("corpus")))]} if FROZEN else {}),
        queries=[temp(directory(layout.split_encoded("queries")))],
        runs=[directory(layout.split_runs())],
    log:
        layout.log("search_split"),
    benchmark:
        layout.benchmark("search_split")
    conda:
        "../envs/sbmoe.yaml"
    resources:
        gpu=1,
    params:
        split="{split}",
        models=STUDY.routing.split_search_params,
        batch_size=config["encoding"].get("batch_size", 128),
        k=config["search"].get("k", 1000),
    script:
        "../workflow/scripts/search.py"


rule train_router:
    input:
        unpack(STUDY.routing.router_inputs),
    output:
        router=directory(layout.router("router")),
    log:
        layout.log("train_router"),
    conda:
        "../envs/sbmoe.yaml"
    params:
        experts=STUDY.routing.experts,
        split=STUDY.routing.router_params,
        router=STUDY.routing.settings.get("router", {}),
        wsum_step=STUDY.routing.settings.get("wsum_step", 0.1),
    script:
        "../workflow/scripts/train_router.py"


rule route:
    input:
        unpack(STUDY.routing.route_inputs),
    output:
        runs=directory(layout.router("runs")),
        evaluation=layout.router("eval.json"),
        choices=layout.router("choices.json"),
    log:
        layout.log("route"),
    conda:
        "../envs/sbmoe.yaml"
    params:
        testsets=STUDY.routing.route_params,
        metrics=config["evaluation"]["metrics"],
        k=config["search"].get("k", 1000),
        tag="{encoder}-{trainset}",
    script:
        "../workflow/scripts/route.py"
