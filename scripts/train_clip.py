from prefalign import stages

stages.setup(snakemake)
stages.train_clip(snakemake.input.world, snakemake.output.model, snakemake.output.log, snakemake.params.clip)
