rule sample_prompts:
    """Draw a prompt set (image + question, never an answer) with the seed."""
    input:
        world=world_inputs(),
        source=prompt_source,
    output:
        f"{R}/seed{{seed}}/prompts/{{pset}}.jsonl",
    log:
        f"{R}/logs/sample_prompts.{{pset}}.seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/sample_prompts.{{pset}}.seed{{seed}}.tsv"
    retries: 0  # deterministic on the CPU: a retry fails the same way
    conda:
        "../envs/prefalign.yaml"
    params:
        pset=lambda wc: setting("prompt_sets", wc.pset),
        upstream=upstream(config, globals=("world",)),
    script:
        "../scripts/sample_prompts.py"
