from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from prefalign.settings import PromptSetSettings
from prefalign.stages.sample_prompts import sample_prompts

job.setup(snakemake)
sample_prompts(out_path=snakemake.output[0], prompt_set=PromptSetSettings.of(snakemake.params.pset),
               seed=int(snakemake.wildcards.seed), world_dir=job.optional_input(snakemake, "world"))
