rule report_pages:
    """The report's pages: each table as HTML, every main run's training curves overlaid, the
    base model's competence and a gallery of answers (the miniature)."""
    input:
        tables=report_tables(),
        logs=[log for run in main_runs() for log in train_logs(run)],
        evaluations=[f"{R}/eval/{m}" for m in gallery_models()],
        competence=([f"{R}/base_model/competence.csv"] if config["base_model"]["kind"] == "tiny_llava" else []),
        world=world_inputs(),
    output:
        report_page_outputs(),
    log:
        f"{R}/logs/report_pages.log",
    benchmark:
        f"{R}/benchmarks/report_pages.tsv"
    retries: 0  # deterministic on the CPU: a retry fails the same way
    conda:
        "../envs/prefalign.yaml"
    params:
        trained=report_runs(),
        models=gallery_models(),
        labels=canonical({run: config["runs"][run]["label"] for run in RUNS}),
    script:
        "../scripts/report_pages.py"
