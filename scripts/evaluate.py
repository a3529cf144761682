from prefalign import evaluation, stages

stages.setup(snakemake)
i, p = snakemake.input, snakemake.params
if "task_results" in i.keys():  # evaluation.split_tasks: join evaluate_task's folders
    evaluation.join_evaluations(i.task_results, p.evaluation["tasks"], snakemake.output[0])
else:
    stages.evaluate(i.model, i.get("adapter"), stages.optional_input(snakemake, "world"), snakemake.output[0],
                    p.evaluation, p.device, p.dtype)
