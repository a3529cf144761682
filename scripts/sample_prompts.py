from prefalign import stages

stages.setup(snakemake)
stages.sample_prompts(snakemake.output[0], snakemake.params.pset, int(snakemake.wildcards.seed),
                      snakemake.input.get("world") or None)
