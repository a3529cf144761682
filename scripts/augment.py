from prefalign import stages

stages.setup(snakemake)
stages.augment(snakemake.input.prompts, snakemake.input.model, snakemake.output.manifest,
               snakemake.output.sheet, snakemake.wildcards.aug, snakemake.params.aug,
               int(snakemake.wildcards.seed))
