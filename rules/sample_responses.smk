rule sample_responses:
    """Generate the base model's responses to each prompt under one view (clean or T(I))."""
    input:
        prompts=f"{R}/seed{{seed}}/prompts/{{pset}}.jsonl",
        model=base_model_dir(),
        manifest=augment_manifest,
    output:
        response_path("{seed}", "{pset}", "{view}", "{gen}"),
    params:
        aug=lambda wc: config["augmentations"].get(wc.view),
        gen=lambda wc: config["generation"][wc.gen],
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
