from prefalign import stages

stages.setup(snakemake)
o, p = snakemake.output, snakemake.params
stages.train(snakemake.input.prefs, snakemake.input.model, o.adapter, o.log, o.curves, p.run,
             p.objective, p.training, int(snakemake.wildcards.seed), p.device, p.dtype,
             reference_path=snakemake.input.reference)
