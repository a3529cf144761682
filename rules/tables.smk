rule tables:
    """Comparison tables (markdown + CSV) and plots over all runs and seeds."""
    input:
        base=f"{R}/eval/base",
        runs=[d for run in RUNS for d in eval_dirs(run)],
        prefs=sorted({f"{R}/seed{s}/preferences/{r['preferences']}.jsonl"
                      for run, r in config["runs"].items() for s in run_seeds(run)}),
        diversity=[diversity_path(s, d) for d in config["tables"].get("diversity", []) for s in SEEDS],
        world=WORLD,
    output:
        main=f"{R}/tables/main.md",
        main_csv=f"{R}/tables/main.csv",
        labels=f"{R}/tables/label_accuracy.md",
        labels_csv=f"{R}/tables/label_accuracy.csv",
        labels_by_group=f"{R}/tables/label_accuracy_by_group.md",
        diversity=f"{R}/tables/diversity.md",
        ablations=expand(f"{R}/tables/ablation_{{name}}.md", name=list(config.get("ablations", {}))),
        plot=f"{R}/tables/main.png",
        sources=f"{R}/tables/sources.json",
    params:
        runs=config["runs"],
        ablations=config.get("ablations", {}),
        tables=config["tables"],
    conda:
        "../envs/prefalign.yaml"
    log:
        f"{R}/logs/tables.log",
    benchmark:
        f"{R}/benchmarks/tables.tsv",
    script:
        "../scripts/tables.py"
