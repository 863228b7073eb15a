# Retrieval: encode (and route) a test set's corpus in shards; encode its queries and search them
# exactly over the shards. With a frozen encoder the corpus is already pooled (rules/train.smk), and
# the search job routes the pooled shards itself: one job per model and test set instead of one per
# shard as well, where routing is a small matrix product and starting the job costs more. With
# training.train_layers N the trained top layers run over the cached prefix states of the texts.


if not FROZEN:

    rule encode_corpus:
        input:
            **({"prefix": STUDY.prefix_corpus_shard} if PARTIAL else {}),
            model=model_input,
            dataset=testset_input,
        output:
            folder=directory(layout.encoded_shard()),
        log:
            layout.log("encode_corpus"),
        benchmark:
            layout.benchmark("encode_corpus")
        conda:
            "../envs/sbmoe.yaml"
        threads: corpus_threads  # the shards of a corpus share the machine's cores
        resources:
            gpu=1,
        params:
            kind="corpus",
            split="test",
            shard=shard_index,
            num_shards=testset_shards,
            poolings=system_poolings,
            batch_size=config["encoding"].get("batch_size", 128),
        script:
            "../workflow/scripts/encode.py"


if FROZEN:

    # One job per encoder, training set, seed and test set searches every system: each one's routing
    # of the pooled cache is a small matrix product, and starting a job costs more than that.
    rule search:
        input:
            unpack(STUDY.search_inputs),
        output:
            queries=[directory(layout.encoded("queries", system=system)) for system in STUDY.systems],
            corpus=[directory(layout.encoded("corpus", system=system)) for system in STUDY.systems],
            runs=[directory(layout.runs(system=system)) for system in STUDY.systems],
        log:
            layout.log("search_frozen"),
        benchmark:
            layout.benchmark("search_frozen")
        conda:
            "../envs/sbmoe.yaml"
        params:
            split="test",
            models=STUDY.search_params,
            batch_size=config["encoding"].get("batch_size", 128),
            k=config["search"].get("k", 1000),
        script:
            "../workflow/scripts/search.py"

    use rule search as search_untrained with:
        output:
            queries=[directory(layout.encoded("queries", system="zeroshot"))],
            corpus=[directory(layout.encoded("corpus", system="zeroshot"))],
            runs=[directory(layout.runs(system="zeroshot"))],
        wildcard_constraints:
            trainset="none",
            seed="0",

else:

    rule search:
        input:
            unpack(STUDY.search_inputs),
        output:
            queries=[directory(layout.encoded("queries"))],
            runs=[directory(layout.runs())],
        log:
            layout.log("search"),
        benchmark:
            layout.benchmark("search")
        conda:
            "../envs/sbmoe.yaml"
        resources:
            gpu=1,
        params:
            split="test",
            models=STUDY.search_params,
            batch_size=config["encoding"].get("batch_size", 128),
            k=config["search"].get("k", 1000),
        script:
            "../workflow/scripts/search.py"
