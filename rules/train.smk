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
        model=directory("results/models/{encoder}/none/zeroshot/seed0/model"),
    log:
        "logs/models/{encoder}/zeroshot.log",
    params:
        config=zeroshot_config,
    conda:
        "../envs/sbmoe.yaml"
    script:
        "../workflow/scripts/init_model.py"


rule pool_queries:
    input:
        model=base_model,
        dataset=dataset_input,
    output:
        pooled="results/pooled/{encoder}/{dataset}/queries-{split}.npz",
    log:
        "logs/pooled/{encoder}/{dataset}/queries-{split}.log",
    benchmark:
        "benchmarks/pooled/{encoder}/{dataset}/queries-{split}.tsv"
    params:
        kind="queries",
        split="{split}",
        shard=0,
        num_shards=1,
        batch_size=config["encoding"].get("batch_size", 128),
    threads: 8  # running the encoder is the heavy part; Snakemake lowers it to --cores
    resources:
        gpu=1,
    conda:
        "../envs/sbmoe.yaml"
    script:
        "../workflow/scripts/pool.py"


rule pool_corpus:
    input:
        model=base_model,
        dataset=dataset_input,
    output:
        pooled="results/pooled/{encoder}/{dataset}/{corpus}-{shard}.npz",
    log:
        "logs/pooled/{encoder}/{dataset}/{corpus}-{shard}.log",
    benchmark:
        "benchmarks/pooled/{encoder}/{dataset}/{corpus}-{shard}.tsv"
    params:
        kind="corpus",
        split=corpus_split,
        shard=shard_index,
        num_shards=dataset_shards,
        batch_size=config["encoding"].get("batch_size", 128),
    threads: corpus_threads
    resources:
        gpu=1,
    conda:
        "../envs/sbmoe.yaml"
    script:
        "../workflow/scripts/pool.py"


if PARTIAL:

    rule prefix_queries:
        input:
            model=base_model,
            dataset=dataset_input,
        output:
            prefix=directory(prefix_folder("{encoder}", "{dataset}", "queries-{split}")),
        log:
            f"logs/prefix/{{encoder}}/top{TRAIN_LAYERS}/{{dataset}}/queries-{{split}}.log",
        benchmark:
            f"benchmarks/prefix/{{encoder}}/top{TRAIN_LAYERS}/{{dataset}}/queries-{{split}}.tsv"
        params:
            kind="queries",
            split="{split}",
            shard=0,
            num_shards=1,
            train_layers=TRAIN_LAYERS,
            batch_size=config["encoding"].get("batch_size", 128),
        threads: 8  # Snakemake lowers it to --cores
        resources:
            gpu=1,
        conda:
            "../envs/sbmoe.yaml"
        script:
            "../workflow/scripts/prefix.py"

    rule prefix_corpus:
        input:
            model=base_model,
            dataset=dataset_input,
        output:
            prefix=directory(prefix_folder("{encoder}", "{dataset}", "{corpus}-{shard}")),
        log:
            f"logs/prefix/{{encoder}}/top{TRAIN_LAYERS}/{{dataset}}/{{corpus}}-{{shard}}.log",
        benchmark:
            f"benchmarks/prefix/{{encoder}}/top{TRAIN_LAYERS}/{{dataset}}/{{corpus}}-{{shard}}.tsv"
        params:
            kind="corpus",
            split=corpus_split,
            shard=shard_index,
            num_shards=dataset_shards,
            train_layers=TRAIN_LAYERS,
            batch_size=config["encoding"].get("batch_size", 128),
        threads: corpus_threads
        resources:
            gpu=1,
        conda:
            "../envs/sbmoe.yaml"
        script:
            "../workflow/scripts/prefix.py"


if FROZEN:

    # One job per encoder, training set and seed trains every system's block on the pooled cache: each
    # takes seconds, and starting a job costs about as much.
    rule train:
        input:
            unpack(train_inputs),
        output:
            model=[directory(p) for p in each_system(f"results/models/{MODEL}/model")],
            log=each_system(f"results/models/{MODEL}/train_log.jsonl"),
        log:
            "logs/train/{encoder}/{trainset}/seed{seed}.log",
        benchmark:
            "benchmarks/train/{encoder}/{trainset}/seed{seed}.tsv"
        params:
            configs=frozen_train_configs,
        conda:
            "../envs/sbmoe.yaml"
        script:
            "../workflow/scripts/train.py"

else:

    rule train:
        wildcard_constraints:
            system=TRAINED_SYSTEM,
        input:
            unpack(train_inputs),
        output:
            model=[directory(f"results/models/{MODEL}/model")],
            log=[f"results/models/{MODEL}/train_log.jsonl"],
        log:
            f"logs/train/{MODEL}.log",
        benchmark:
            f"benchmarks/train/{MODEL}.tsv"
        params:
            configs=model_configs,
        resources:
            gpu=1,
        conda:
            "../envs/sbmoe.yaml"
        script:
            "../workflow/scripts/train.py"
