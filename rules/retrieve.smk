# Retrieval: encode (and route) a test set's corpus in shards; encode its queries and search them
# exactly over the shards.


rule encode_corpus:
    input:
        unpack(encode_corpus_inputs),
    output:
        folder=directory(f"results/encoded/{MODEL}/{{testset}}/corpus-{{shard}}"),
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
    threads: 1 if FROZEN else 8  # the encoder runs only without a pooled cache; Snakemake lowers it to --cores
    resources:
        gpu=1,
    conda:
        "../envs/sbmoe.yaml"
    script:
        "../workflow/scripts/encode.py"


rule search:
    input:
        unpack(encode_queries_inputs),
        corpus=corpus_shards,
    output:
        queries=directory(f"results/encoded/{MODEL}/{{testset}}/queries"),
        runs=directory(f"results/runs/{MODEL}/{{testset}}"),
    log:
        f"logs/search/{MODEL}/{{testset}}.log",
    benchmark:
        f"benchmarks/search/{MODEL}/{{testset}}.tsv"
    params:
        split="test",
        poolings=system_poolings,
        batch_size=config["encoding"].get("batch_size", 128),
        k=config["search"].get("k", 1000),
        tag=search_tag,
    resources:
        gpu=1,
    conda:
        "../envs/sbmoe.yaml"
    script:
        "../workflow/scripts/search.py"
