rule train_clip:
    """The miniature's open_clip model for ASPO's image-text similarity, trained on world sentences."""
    input:
        world=WORLD,
    output:
        model=directory(f"{R}/clip/{{clip}}/model"),
        log=f"{R}/clip/{{clip}}/log.csv",
    log:
        f"{R}/logs/train_clip.{{clip}}.log",
    benchmark:
        f"{R}/benchmarks/train_clip.{{clip}}.tsv"
    conda:
        "../envs/prefalign.yaml"
    threads: 2
    params:
        clip=lambda wc: setting("clip_models", wc.clip),
        upstream=upstream(config, globals=("world",)),
    script:
        "../scripts/train_clip.py"
