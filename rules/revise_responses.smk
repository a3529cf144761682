rule revise_responses:
    """ConSR: the base model revises each clean sample, given its own description."""
    input:
        prompts=f"{R}/seed{{seed}}/prompts/{{pset}}.jsonl",
        model=base_model_dir(),
        descriptions=description_path("{seed}", "{pset}", "{cp}"),
        responses=response_path("{seed}", "{pset}", "clean", "{gen}"),
    output:
        revision_path("{seed}", "{pset}", "{cp}", "{gen}"),
    log:
        f"{R}/logs/revise_responses.{{pset}}.{{cp}}.{{gen}}.seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/revise_responses.{{pset}}.{{cp}}.{{gen}}.seed{{seed}}.tsv"
    conda:
        "../envs/prefalign.yaml"
    # One thread, as rule sample_responses: generation runs two at a time on 2 cores.
    threads: 1
    resources:
        mem_mb=4000,
    params:
        template=lambda wc: config["consr_prompts"][wc.cp]["revision_template"],
        gen=lambda wc: setting("generation", config["consr_prompts"][wc.cp]["revision_generation"]),
        upstream=lambda wc: upstream(config, ("prompt_sets", wc.pset), ("consr_prompts", wc.cp), ("generation", wc.gen)),
    script:
        "../scripts/revise_responses.py"
