from prefalign import stages

stages.setup(snakemake)
p, w = snakemake.params, snakemake.wildcards
stages.revise_responses(snakemake.input.prompts, snakemake.input.model, snakemake.input.descriptions,
                        snakemake.input.responses, snakemake.output[0], p.template, w.gen, p.gen, int(w.seed),
                        p.device, p.dtype)
