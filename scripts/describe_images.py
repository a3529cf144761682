from prefalign import stages

stages.setup(snakemake)
p = snakemake.params
stages.describe_images(snakemake.input.prompts, snakemake.input.model, snakemake.output[0], p.prompt, p.gen,
                       int(snakemake.wildcards.seed), p.device, p.dtype)
