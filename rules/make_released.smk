rule make_released:
    """The miniature's stand-in for a released preference dataset: POVID's recipe (answers
    with injected hallucinations) on the world's SFT split, in POVID's release format."""
    input:
        WORLD,
    output:
        f"{R}/released/{{dataset}}.json",
    log:
        f"{R}/logs/make_released.{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/make_released.{{dataset}}.tsv"
    retries: 0  # deterministic on the CPU: a retry fails the same way
    conda:
        "../envs/prefalign.yaml"
    params:
        dataset=lambda wc: setting("released_data", wc.dataset),
        upstream=upstream(config, globals=("world",)),
    script:
        "../scripts/make_released.py"
