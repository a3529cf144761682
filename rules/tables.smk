rule tables:
    """Comparison tables (markdown + CSV) and plots over all runs and seeds."""
    input:
        base=f"{R}/eval/base",
        runs=[d for run in RUNS for d in eval_dirs(run)],
        prefs=trained_preference_files(".jsonl"),
        stats=trained_preference_files(".stats.json"),
        diversity=[diversity_path(s, d) for d in config["tables"]["diversity"] for s in SEEDS],
        world=world_inputs(),
        upstream=sorted({f for run in RUNS for s in run_seeds(run) for f in run_files(run, s)}),
    output:
        table_figures(table_outputs()),
    log:
        f"{R}/logs/tables.log",
    benchmark:
        f"{R}/benchmarks/tables.tsv"
    retries: 0  # deterministic on the CPU: a retry fails the same way
    conda:
        "../envs/prefalign.yaml"
    params:
        runs=canonical(config["runs"]),
        order=run_order(config),
        tables=canonical(config["tables"]),
        tasks=config["evaluation"]["tasks"],
        control=positive_control(),
        upstream=upstream(
            config,
            *[("runs", run) for run in RUNS],
            *[
                (section, d[key])
                for d in config["tables"]["diversity"]
                for section, key in [
                    ("prompt_sets", "prompts"),
                    ("augmentations", "view"),
                    ("generation", "generation"),
                ]
            ],
            globals=(*GLOBAL_SETTINGS, "evaluation"),
        ),
    script:
        "../scripts/tables.py"
