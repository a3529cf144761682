rule tables:
    """Comparison tables (markdown + CSV) and plots over all runs and seeds."""
    input:
        base=f"{R}/eval/base",
        runs=[d for run in RUNS for d in eval_dirs(run)],
        prefs=sorted({f"{R}/seed{s}/preferences/{r['preferences']}.jsonl"
                      for run, r in config["runs"].items() for s in run_seeds(run)}),
        diversity=[diversity_path(s, d) for d in config["tables"].get("diversity", []) for s in SEEDS],
        world=world_inputs(),
    output:
        table_outputs(),
    params:
        runs=config["runs"],
        ablations=config.get("ablations", {}),
        tables=config["tables"],
        tasks=config["evaluation"]["tasks"],
        control=positive_control(),
    conda:
        "../envs/prefalign.yaml"
    log:
        f"{R}/logs/tables.log",
    benchmark:
        f"{R}/benchmarks/tables.tsv",
    script:
        "../scripts/tables.py"
