rule train_base_model:
    """Build the tiny LLaVA and train it on the world's SFT split (miniature only)."""
    input:
        unpack(base_model_vision),
        world=WORLD,
    output:
        model=directory(f"{R}/base_model/model"),
        log=f"{R}/base_model/sft_log.csv",
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
        base=canonical(config["base_model"], OWN_RULE_ONLY["base_model"]),
        upstream=upstream(config, globals=("world",)),
        image_size=config.get("world", {}).get("image_size"),
    script:
        "../scripts/train_base_model.py"


rule base_competence:
    """The base model's accuracy per question family, clean and under noise (miniature only):
    a job of its own, which the runs' stages do not wait for."""
    input:
        model=f"{R}/base_model/model",
        world=WORLD,
    output:
        f"{R}/base_model/competence.csv",
    log:
        f"{R}/logs/base_competence.log",
    benchmark:
        f"{R}/benchmarks/base_competence.tsv"
    conda:
        "../envs/prefalign.yaml"
    threads: 1
    params:
        noise_steps=config["base_model"].get("competence_noise_steps", []),
        seed=config["base_model"].get("sft", {}).get("seed"),
        upstream=upstream(config, globals=("world",)),
    script:
        "../scripts/base_competence.py"
