# Models: the untrained encoder (zero-shot system, base of the caches), the frozen encoder's pooled
# embeddings or (training.train_layers N) the hidden states entering its top N layers, and the trained
# systems.


# A hub encoder is downloaded where init_model runs: on the submitting node, since cluster compute nodes
# are often offline. Every job that loads it (pooling, training, search) comes after init_model and
# reads the Hugging Face cache (HF_HOME), which compute nodes share.
if any(is_hub_id(encoder["name_or_path"]) for encoder in config["encoders"].values()):

    localrules:
        init_model,


rule init_model:
    output:
        model=directory(layout.untrained_model()),
    log:
        layout.log("init_model"),
    conda:
        "../envs/sbmoe.yaml"
    params:
        config=STUDY.untrained_config,
    script:
        "../workflow/scripts/init_model.py"


rule pool_queries:
    input:
        model=base_model,
        dataset=dataset_input,
    output:
        pooled=layout.pooled(part=layout.queries_part()),
    log:
        layout.log("pool_queries"),
    benchmark:
        layout.benchmark("pool_queries")
    conda:
        "../envs/sbmoe.yaml"
    threads: 8  # running the encoder is the heavy part; Snakemake lowers it to --cores
    resources:
        gpu=1,
    params:
        kind="queries",
        split="{split}",
        shard=0,
        num_shards=1,
        batch_size=config["encoding"].get("batch_size", 128),
    script:
        "../workflow/scripts/pool.py"


rule pool_corpus:
    input:
        model=base_model,
        dataset=dataset_input,
    output:
        pooled=layout.pooled(part=layout.corpus_part()),
    log:
        layout.log("pool_corpus"),
    benchmark:
        layout.benchmark("pool_corpus")
    conda:
        "../envs/sbmoe.yaml"
    threads: corpus_threads
    resources:
        gpu=1,
    params:
        kind="corpus",
        split=corpus_split,
        shard=shard_index,
        num_shards=dataset_shards,
        batch_size=config["encoding"].get("batch_size", 128),
    script:
        "../workflow/scripts/pool.py"


if PARTIAL:

    rule prefix_queries:
        input:
            model=base_model,
            dataset=dataset_input,
        output:
            prefix=directory(STUDY.prefix("{encoder}", "{dataset}", layout.queries_part())),
        log:
            layout.log("prefix_queries", layers=TRAIN_LAYERS),
        benchmark:
            layout.benchmark("prefix_queries", layers=TRAIN_LAYERS)
        conda:
            "../envs/sbmoe.yaml"
        threads: 8  # Snakemake lowers it to --cores
        resources:
            gpu=1,
        params:
            kind="queries",
            split="{split}",
            shard=0,
            num_shards=1,
            train_layers=TRAIN_LAYERS,
            batch_size=config["encoding"].get("batch_size", 128),
        script:
            "../workflow/scripts/prefix.py"

    rule prefix_corpus:
        input:
            model=base_model,
            dataset=dataset_input,
        output:
            prefix=directory(STUDY.prefix("{encoder}", "{dataset}", layout.corpus_part())),
        log:
            layout.log("prefix_corpus", layers=TRAIN_LAYERS),
        benchmark:
            layout.benchmark("prefix_corpus", layers=TRAIN_LAYERS)
        conda:
            "../envs/sbmoe.yaml"
        threads: corpus_threads
        resources:
            gpu=1,
        params:
            kind="corpus",
            split=corpus_split,
            shard=shard_index,
            num_shards=dataset_shards,
            train_layers=TRAIN_LAYERS,
            batch_size=config["encoding"].get("batch_size", 128),
        script:
            "../workflow/scripts/prefix.py"


if FROZEN:

    # One job per encoder, training set and seed trains every system's block on the pooled cache: each
    # takes seconds, and starting a job costs about as much.
    rule train:
        input:
            unpack(STUDY.train_inputs),
        output:
            model=[directory(layout.model(system=system)) for system in STUDY.systems],
            log=[layout.train_log(system=system) for system in STUDY.systems],
        log:
            layout.log("train_frozen"),
        benchmark:
            layout.benchmark("train_frozen")
        conda:
            "../envs/sbmoe.yaml"
        params:
            configs=STUDY.train_configs,
        script:
            "../workflow/scripts/train.py"

else:

    rule train:
        input:
            unpack(STUDY.train_inputs),
        output:
            model=[directory(layout.model())],
            log=[layout.train_log()],
        log:
            layout.log("train"),
        benchmark:
            layout.benchmark("train")
        wildcard_constraints:
            system=TRAINED_SYSTEM,
        conda:
            "../envs/sbmoe.yaml"
        resources:
            gpu=1,
        params:
            configs=STUDY.train_configs,
        script:
            "../workflow/scripts/train.py"
