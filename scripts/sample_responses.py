from prefalign import stages

stages.setup(snakemake)
w, p = snakemake.wildcards, snakemake.params
stages.sample_responses(snakemake.input.prompts, snakemake.input.model,
                        snakemake.input.manifest or None, snakemake.output[0], w.view, p.aug,
                        w.gen, p.gen, int(w.seed), p.device, p.dtype)
