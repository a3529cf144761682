rule train_base_model:
    """Build the tiny LLaVA and train it on the world's SFT split (miniature only)."""
    input:
        unpack(base_model_vision),
        world=WORLD,
    output:
        model=directory(f"{R}/base_model/model"),
        log=f"{R}/base_model/sft_log.csv",
        competence=f"{R}/base_model/competence.csv",
    log:
        f"{R}/logs/train_base_model.log",
    benchmark:
        f"{R}/benchmarks/train_base_model.tsv"
    conda:
        "../envs/prefalign.yaml"
    threads: 2
    resources:
        mem_mb=4000,
    params:
        base=canonical(config["base_model"]),
        upstream=upstream(config, globals=("world",)),
        image_size=config.get("world", {}).get("image_size"),
    script:
        "../scripts/train_base_model.py"
