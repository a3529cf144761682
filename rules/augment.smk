rule augment:
    """Corrupt each prompt's image with T (diffusion noise by default): manifest + contact sheet."""
    input:
        prompts=f"{R}/seed{{seed}}/prompts/{{pset}}.jsonl",
        model=base_model_dir(),
    output:
        manifest=f"{R}/seed{{seed}}/augment/{{pset}}.{{aug}}.jsonl",
        sheet=in_report(
            f"{R}/seed{{seed}}/augment/{{pset}}.{{aug}}.png",
            "augment",
            AUGMENTATION,
            "{aug}",
            prompts="{pset}",
            augmentation="{aug}",
            seed="{seed}",
        ),
    log:
        f"{R}/logs/augment.{{pset}}.{{aug}}.seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/augment.{{pset}}.{{aug}}.seed{{seed}}.tsv"
    conda:
        "../envs/prefalign.yaml"
    params:
        aug=lambda wc: setting("augmentations", wc.aug),
        upstream=lambda wc: upstream(config, ("prompt_sets", wc.pset)),
    script:
        "../scripts/augment.py"
