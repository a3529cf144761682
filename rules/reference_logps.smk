rule reference_logps:
    """The base model's log-probs of every response of a preference set, once: every run,
    seed and epoch that trains on the set reads them instead of recomputing them."""
    input:
        prefs=f"{R}/seed{{seed}}/preferences/{{prefset}}.jsonl",
        model=base_model_dir(),
        upstream=lambda wc: preference_set_files(wc.seed, wc.prefset),
    output:
        reference_path("{seed}", "{prefset}"),
    log:
        f"{R}/logs/reference_logps.{{prefset}}.seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/reference_logps.{{prefset}}.seed{{seed}}.tsv"
    conda:
        "../envs/prefalign.yaml"
    # One thread, as train: the same bytes as on 2 threads (docs/notes.md, issue 15).
    threads: 1
    resources:
        mem_mb=4000,
    params:
        upstream=lambda wc: upstream(config, ("preference_sets", wc.prefset)),
    script:
        "../scripts/reference_logps.py"
