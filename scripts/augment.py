from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from prefalign.augment import AugmentSpec
from prefalign.stages.augment import augment

job.setup(snakemake)
augment(prompts_path=snakemake.input.prompts, model_dir=snakemake.input.model,
        manifest_path=snakemake.output.manifest, sheet_path=snakemake.output.sheet,
        augmentation=AugmentSpec.from_config(snakemake.wildcards.aug, snakemake.params.aug),
        seed=int(snakemake.wildcards.seed))
