# With `evaluation.split_tasks: true` every benchmark task of every model is its own job
# (evaluate_task, on a GPU), and evaluate / evaluate_base only join their folders, locally.
if split_evaluation():

    localrules:
        evaluate_base,
        evaluate,


EVALUATE_OR_JOIN = "../scripts/join_evaluations.py" if split_evaluation() else "../scripts/evaluate.py"


rule evaluate:
    """lmms-eval on a trained adapter, attached to the base model after loading (no merged
    checkpoint is written; float32 weights merge it in memory, `evaluation.adapted`)."""
    input:
        unpack(lambda wc: evaluation_inputs(f"{wc.run}.seed{wc.seed}")),
    output:
        directory(f"{R}/eval/{{run}}.seed{{seed}}"),
    log:
        f"{R}/logs/evaluate.{{run}}.seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate.{{run}}.seed{{seed}}.tsv"
    conda:
        "../envs/prefalign.yaml"
    # One thread: two evaluations side by side on 2 cores took 181 s where one at a time on 2
    # threads took 285 s, with byte-identical samples (docs/notes.md, issue 15).
    threads: 1
    params:
        evaluation=canonical(config["evaluation"]),
        upstream=lambda wc: target_upstream(f"{wc.run}.seed{wc.seed}"),
    script:
        EVALUATE_OR_JOIN


# the base model (seed-independent: greedy decoding)
use rule evaluate as evaluate_base with:
    input:
        unpack(lambda wc: evaluation_inputs("base")),
    output:
        directory(f"{R}/eval/base"),
    log:
        f"{R}/logs/evaluate.base.log",
    benchmark:
        f"{R}/benchmarks/evaluate.base.tsv"
    params:
        upstream=target_upstream("base"),


rule evaluate_task:
    """One benchmark task on one model (target: base or <run>.seed<seed>)."""
    input:
        unpack(lambda wc: evaluation_task_inputs(wc.target)),
    output:
        temp(directory(f"{R}/eval/tasks/{{target}}/{{task}}")),
    log:
        f"{R}/logs/evaluate.{{target}}.{{task}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate_task.{{target}}.{{task}}.tsv"
    conda:
        "../envs/prefalign.yaml"
    threads: 2
    params:
        evaluation=lambda wc: canonical({**config["evaluation"], "tasks": [wc.task]}),
        upstream=lambda wc: target_upstream(wc.target),
    script:
        "../scripts/evaluate.py"
