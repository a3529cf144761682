from prefalign import stages

stages.setup(snakemake)
o, p = snakemake.output, snakemake.params
run = snakemake.wildcards.run
# how often to checkpoint is no param (it changes no output, so it must not rerun the job)
settings = snakemake.config["training"][snakemake.config["runs"][run]["training"]]
training = {**p.training, "checkpoint_every": settings["checkpoint_every"]}
stages.train(snakemake.input.prefs, snakemake.input.model, o.adapter, o.log, o.curves, run,
             p.objective, training, int(snakemake.wildcards.seed), p.device, p.dtype,
             reference_path=snakemake.input.reference)
