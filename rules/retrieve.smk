# Retrieval: encode (and route) a test set's corpus in shards; encode its queries and search them
# exactly over the shards. With a frozen encoder the corpus is already pooled (rules/train.smk), and
# the search job routes the pooled shards itself: one job per model and test set instead of one per
# shard as well, where routing is a small matrix product and starting the job costs more. With
# training.train_layers N the trained top layers run over the cached prefix states of the texts.


if not FROZEN:

    rule encode_corpus:
        input:
            model=model_folder,
            dataset=lambda wildcards: dataset_folder(wildcards.testset),
            **({"prefix": prefix_corpus_shard} if PARTIAL else {}),
        output:
            folder=directory(f"{ENCODED}/corpus/{{shard}}"),
        log:
            f"logs/encode/{MODEL}/{{testset}}/corpus-{{shard}}.log",
        benchmark:
            f"benchmarks/encode/{MODEL}/{{testset}}/corpus-{{shard}}.tsv"
        params:
            kind="corpus",
            split="test",
            shard=shard_index,
            num_shards=testset_shards,
            poolings=system_poolings,
            batch_size=config["encoding"].get("batch_size", 128),
        threads: 8  # Snakemake lowers it to --cores
        resources:
            gpu=1,
        conda:
            "../envs/sbmoe.yaml"
        script:
            "../workflow/scripts/encode.py"


if FROZEN:

    # One job per encoder, training set, seed and test set searches every system: each one's routing
    # of the pooled cache is a small matrix product, and starting a job costs more than that.
    rule search:
        input:
            unpack(search_inputs),
        output:
            queries=[directory(p) for p in each_system(f"{ENCODED}/queries")],
            corpus=[directory(p) for p in each_system(f"{ENCODED}/corpus")],
            runs=[directory(p) for p in each_system(f"results/runs/{MODEL}/{{testset}}")],
        log:
            "logs/search/{encoder}/{trainset}/seed{seed}/{testset}.log",
        benchmark:
            "benchmarks/search/{encoder}/{trainset}/seed{seed}/{testset}.tsv"
        params:
            split="test",
            models=search_params,
            batch_size=config["encoding"].get("batch_size", 128),
            k=config["search"].get("k", 1000),
        conda:
            "../envs/sbmoe.yaml"
        script:
            "../workflow/scripts/search.py"

    use rule search as search_untrained with:
        wildcard_constraints:
            trainset="none",
            seed="0",
        output:
            queries=[directory("results/encoded/{encoder}/{trainset}/zeroshot/seed{seed}/{testset}/queries")],
            corpus=[directory("results/encoded/{encoder}/{trainset}/zeroshot/seed{seed}/{testset}/corpus")],
            runs=[directory("results/runs/{encoder}/{trainset}/zeroshot/seed{seed}/{testset}")],

else:

    rule search:
        input:
            unpack(search_inputs),
        output:
            queries=[directory(f"{ENCODED}/queries")],
            runs=[directory(f"results/runs/{MODEL}/{{testset}}")],
        log:
            f"logs/search/{MODEL}/{{testset}}.log",
        benchmark:
            f"benchmarks/search/{MODEL}/{{testset}}.tsv"
        params:
            split="test",
            models=search_params,
            batch_size=config["encoding"].get("batch_size", 128),
            k=config["search"].get("k", 1000),
        resources:
            gpu=1,
        conda:
            "../envs/sbmoe.yaml"
        script:
            "../workflow/scripts/search.py"
