from prefalign import stages

stages.setup(snakemake)
stages.sample_prompts(snakemake.output[0], snakemake.params.pset, int(snakemake.wildcards.seed),
                      stages.optional_input(snakemake, "world"))
