rule evaluate_base:
    """lmms-eval on the base model (seed-independent: greedy decoding)."""
    input:
        model=base_model_dir(),
        world=world_inputs(),
    output:
        directory(f"{R}/eval/base"),
    params:
        evaluation=config["evaluation"],
        device=config["device"],
        dtype=config["dtype"],
    threads: 2
    conda:
        "../envs/prefalign.yaml"
    log:
        f"{R}/logs/evaluate.base.log",
    benchmark:
        f"{R}/benchmarks/evaluate.base.tsv",
    script:
        "../scripts/evaluate.py"


rule evaluate:
    """lmms-eval on a trained adapter, attached to the base model without merging."""
    input:
        model=base_model_dir(),
        world=world_inputs(),
        adapter=f"{R}/seed{{seed}}/train/{{run}}/adapter",
    output:
        directory(f"{R}/eval/{{run}}.seed{{seed}}"),
    params:
        evaluation=config["evaluation"],
        device=config["device"],
        dtype=config["dtype"],
    threads: 2
    conda:
        "../envs/prefalign.yaml"
    log:
        f"{R}/logs/evaluate.{{run}}.seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate.{{run}}.seed{{seed}}.tsv",
    script:
        "../scripts/evaluate.py"
