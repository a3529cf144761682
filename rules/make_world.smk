rule make_world:
    """The miniature's synthetic world: images, SFT split, prompt pool, benchmarks."""
    output:
        directory(WORLD),
    log:
        f"{R}/logs/make_world.log",
    benchmark:
        f"{R}/benchmarks/make_world.tsv"
    retries: 0  # deterministic on the CPU: a retry fails the same way
    conda:
        "../envs/prefalign.yaml"
    params:
        world=canonical(config.get("world")),
    script:
        "../scripts/make_world.py"
