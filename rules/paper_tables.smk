rule paper_table:
    """One paper's table or figure (`paper_tables:`): the base model and exactly its runs."""
    input:
        base=f"{R}/eval/base",
        runs=lambda wc: [d for run in paper_table_runs(wc) for d in eval_dirs(run)],
    output:
        md=f"{R}/tables/{paper_table_wildcard(False)}.md",
        csv=f"{R}/tables/{paper_table_wildcard(False)}.csv",
    log:
        f"{R}/logs/paper_table.{{table}}.log",
    benchmark:
        f"{R}/benchmarks/paper_table.{{table}}.tsv"
    retries: 0  # deterministic on the CPU: a retry fails the same way
    conda:
        "../envs/prefalign.yaml"
    params:
        table=lambda wc: canonical(config["paper_tables"][wc.table]),
        labels=lambda wc: {run: config["runs"][run]["label"] for run in paper_table_runs(wc)},
        tables=canonical(config["tables"]),
        tasks=config["evaluation"]["tasks"],
        upstream=lambda wc: upstream(
            config,
            *[("runs", run) for run in paper_table_runs(wc)],
            globals=(*GLOBAL_SETTINGS, "evaluation"),
        ),
    script:
        "../scripts/paper_table.py"


# a paper's figure: the same table, its metrics as bars with their intervals, and its runs'
# training curves (SeVa's Figure 6 plots the DPO reward margin during training)
use rule paper_table as paper_figure with:
    input:
        base=f"{R}/eval/base",
        runs=lambda wc: [d for run in paper_table_runs(wc) for d in eval_dirs(run)],
        logs=lambda wc: [log for run in paper_table_runs(wc) for log in train_logs(run)],
    output:
        md=f"{R}/tables/{paper_table_wildcard(True)}.md",
        csv=f"{R}/tables/{paper_table_wildcard(True)}.csv",
        png=in_report(
            f"{R}/tables/{paper_table_wildcard(True)}.png",
            "paper_figure",
            PAPER_TABLES,
            "figures",
            name="{table}",
            kind="figure",
        ),
        training=in_report(
            f"{R}/tables/{paper_table_wildcard(True)}.training.png",
            "paper_figure_training",
            PAPER_TABLES,
            "figures",
            name="{table}",
            kind="training curves",
        ),
    log:
        f"{R}/logs/paper_figure.{{table}}.log",
    benchmark:
        f"{R}/benchmarks/paper_figure.{{table}}.tsv"
