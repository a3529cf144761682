rule make_world:
    """The miniature's synthetic world: images, SFT split, prompt pool, benchmarks."""
    output:
        directory(WORLD),
    params:
        world=canonical(config.get("world")),
    conda:
        "../envs/prefalign.yaml"
    log:
        f"{R}/logs/make_world.log",
    benchmark:
        f"{R}/benchmarks/make_world.tsv",
    script:
        "../scripts/make_world.py"
