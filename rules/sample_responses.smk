rule sample_responses:
    """Generate the base model's responses to each prompt under one view (clean or T(I))."""
    input:
        prompts=f"{R}/seed{{seed}}/prompts/{{pset}}.jsonl",
        model=base_model_dir(),
        manifest=augment_manifest,
    output:
        response_path("{seed}", "{pset}", "{view}", generation_wildcard(sharded=False)),
    log:
        f"{R}/logs/sample_responses.{{pset}}.{{view}}.{{gen}}.seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/sample_responses.{{pset}}.{{view}}.{{gen}}.seed{{seed}}.tsv"
    conda:
        "../envs/prefalign.yaml"
    # One thread: two generations side by side on 2 cores took 65 s where one at a time on 2
    # threads took 87 s (6 jobs), with byte-identical responses (docs/notes.md, issue 15).
    threads: 1
    resources:
        mem_mb=4000,
    params:
        aug=lambda wc: setting("augmentations", wc.view if wc.view in config["augmentations"] else None),
        gen=lambda wc: setting("generation", wc.gen),
        upstream=lambda wc: upstream(
            config, ("prompt_sets", wc.pset), ("augmentations", wc.view), ("generation", wc.gen)
        ),
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
    log:
        f"{R}/logs/sample_responses.{{pset}}.{{view}}.{{gen}}.seed{{seed}}.{{shard}}-of-{{nshards}}.log",
    benchmark:
        f"{R}/benchmarks/sample_responses_shard.{{pset}}.{{view}}.{{gen}}.seed{{seed}}.{{shard}}-of-{{nshards}}.tsv"
    conda:
        "../envs/prefalign.yaml"
    threads: 2
    resources:
        mem_mb=4000,
    params:
        aug=lambda wc: setting("augmentations", wc.view if wc.view in config["augmentations"] else None),
        gen=lambda wc: setting("generation", wc.gen),
        upstream=lambda wc: upstream(
            config, ("prompt_sets", wc.pset), ("augmentations", wc.view), ("generation", wc.gen)
        ),
    script:
        "../scripts/sample_responses.py"


rule join_response_shards:
    """sample_responses of a generation with `shards: n`: its n shard files' records, in prompt order."""
    input:
        shards=response_shards,
        prompts=f"{R}/seed{{seed}}/prompts/{{pset}}.jsonl",
    output:
        response_path("{seed}", "{pset}", "{view}", generation_wildcard(sharded=True)),
    log:
        f"{R}/logs/join_response_shards.{{pset}}.{{view}}.{{gen}}.seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/join_response_shards.{{pset}}.{{view}}.{{gen}}.seed{{seed}}.tsv"
    retries: 0  # deterministic on the CPU: a retry fails the same way
    localrule: True
    conda:
        "../envs/prefalign.yaml"
    params:
        upstream=lambda wc: upstream(
            config, ("prompt_sets", wc.pset), ("augmentations", wc.view), ("generation", wc.gen)
        ),
    script:
        "../scripts/join_response_shards.py"
