from prefalign import stages

stages.setup(snakemake)
o = snakemake.output
# how often to checkpoint is no param (it changes no output, so it must not rerun the job)
base = {**snakemake.params.base,
        "sft": {**snakemake.params.base["sft"], "checkpoint_every": snakemake.config["base_model"]["sft"]["checkpoint_every"]}}
stages.train_base_model(snakemake.input[0], o.model, o.log, o.competence, base, snakemake.params.image_size)
