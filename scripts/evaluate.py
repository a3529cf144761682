from prefalign import stages

stages.setup(snakemake)
i, p = snakemake.input, snakemake.params
stages.evaluate(i.model, i.get("adapter"), stages.optional_input(snakemake, "world"), snakemake.output[0],
                p.evaluation, p.device, p.dtype)
