rule train:
    """LoRA preference training of one run: its preference set under its objective."""
    input:
        prefs=lambda wc: f"{R}/seed{wc.seed}/preferences/{config['runs'][wc.run]['preferences']}.jsonl",
        reference=lambda wc: reference_path(wc.seed, config["runs"][wc.run]["preferences"]),
        model=base_model_dir(),
        upstream=lambda wc: preference_set_files(wc.seed, config["runs"][wc.run]["preferences"]),
    output:
        adapter=directory(f"{R}/seed{{seed}}/train/{{run}}/adapter"),
        log=f"{R}/seed{{seed}}/train/{{run}}/log.csv",
        curves=in_report(
            f"{R}/seed{{seed}}/train/{{run}}/curves.png",
            "training_curves",
            TRAINING,
            "each run",
            run="{run}",
            seed="{seed}",
        ),
    log:
        f"{R}/logs/train.{{run}}.seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/train.{{run}}.seed{{seed}}.tsv"
    conda:
        "../envs/prefalign.yaml"
    # One thread: the default's part after the base model took 244 / 236 s where 2 threads
    # here took 321 / 302 s (interleaved); the adapters differ from 2 threads' in the last
    # bits and are the same at any --cores (docs/notes.md, issue 15).
    threads: 1
    resources:
        mem_mb=4000,
        gpu=training_gpus,
    params:
        objective=lambda wc: setting("objectives", config["runs"][wc.run]["objective"]),
        training=lambda wc: setting("training", config["runs"][wc.run]["training"]),
        upstream=lambda wc: upstream(config, ("runs", wc.run)),
    script:
        "../scripts/train.py"
