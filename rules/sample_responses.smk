rule sample_responses:
    """Generate the base model's responses to each prompt under one view (clean or T(I)); with
    `shards: n` in the generation config, join the n files of sample_responses_shard."""
    input:
        prompts=f"{R}/seed{{seed}}/prompts/{{pset}}.jsonl",
        model=base_model_dir(),
        manifest=augment_manifest,
        shards=response_shards,
    output:
        response_path("{seed}", "{pset}", "{view}", "{gen}"),
    params:
        aug=lambda wc: setting("augmentations", wc.view if wc.view in config["augmentations"] else None),
        gen=lambda wc: setting("generation", wc.gen),
        upstream=lambda wc: upstream(
            config, ("prompt_sets", wc.pset), ("augmentations", wc.view), ("generation", wc.gen)
        ),
        device=config["device"],
        dtype=config["dtype"],
    threads: 2
    resources:
        mem_mb=4000,
    conda:
        "../envs/prefalign.yaml"
    log:
        f"{R}/logs/sample_responses.{{pset}}.{{view}}.{{gen}}.seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/sample_responses.{{pset}}.{{view}}.{{gen}}.seed{{seed}}.tsv",
    script:
        "../scripts/sample_responses.py"


rule sample_responses_shard:
    """Shard k of n of sample_responses: a contiguous run of whole generation batches."""
    input:
        prompts=f"{R}/seed{{seed}}/prompts/{{pset}}.jsonl",
        model=base_model_dir(),
        manifest=augment_manifest,
    output:
        temp(shard_path("{seed}", "{pset}", "{view}", "{gen}", "{shard}", "{nshards}")),
    params:
        aug=lambda wc: setting("augmentations", wc.view if wc.view in config["augmentations"] else None),
        gen=lambda wc: setting("generation", wc.gen),
        upstream=lambda wc: upstream(
            config, ("prompt_sets", wc.pset), ("augmentations", wc.view), ("generation", wc.gen)
        ),
        device=config["device"],
        dtype=config["dtype"],
    threads: 2
    resources:
        mem_mb=4000,
    conda:
        "../envs/prefalign.yaml"
    log:
        f"{R}/logs/sample_responses.{{pset}}.{{view}}.{{gen}}.seed{{seed}}.{{shard}}-of-{{nshards}}.log",
    benchmark:
        f"{R}/benchmarks/sample_responses_shard.{{pset}}.{{view}}.{{gen}}.seed{{seed}}.{{shard}}-of-{{nshards}}.tsv",
    script:
        "../scripts/sample_responses.py"
