from prefalign import stages

stages.setup(snakemake)
stages.make_world(snakemake.output[0], snakemake.params.world)
