rule describe_images:
    """ConSR: the base model (or the prompts' description_model) describes each prompt's image."""
    input:
        prompts=f"{R}/seed{{seed}}/prompts/{{pset}}.jsonl",
        model=lambda wc: config["consr_prompts"][wc.cp].get("description_model") or base_model_dir(),
    output:
        description_path("{seed}", "{pset}", "{cp}"),
    log:
        f"{R}/logs/describe_images.{{pset}}.{{cp}}.seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/describe_images.{{pset}}.{{cp}}.seed{{seed}}.tsv"
    conda:
        "../envs/prefalign.yaml"
    # One thread, as rule sample_responses: generation runs two at a time on 2 cores.
    threads: 1
    resources:
        mem_mb=4000,
    params:
        prompt=lambda wc: config["consr_prompts"][wc.cp]["description_prompt"],
        gen=lambda wc: setting("generation", config["consr_prompts"][wc.cp]["description_generation"]),
        upstream=lambda wc: upstream(config, ("prompt_sets", wc.pset), ("consr_prompts", wc.cp)),
    script:
        "../scripts/describe_images.py"
