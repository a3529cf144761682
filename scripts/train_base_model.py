from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from prefalign.settings import BaseModelSettings
from prefalign.stages.train_base_model import train_base_model

job.setup(snakemake)
o = snakemake.output
# how often to checkpoint is no param (it changes no output, so it must not rerun the job)
every = snakemake.config["base_model"]["sft"]["checkpoint_every"]
base = {**snakemake.params.base, "sft": {**snakemake.params.base["sft"], "checkpoint_every": every}}
train_base_model(world_dir=snakemake.input.world, vision_from=snakemake.input.get("vision"), model_dir=o.model,
                 log_csv=o.log, base=BaseModelSettings.of(base),
                 image_size=snakemake.params.image_size)
