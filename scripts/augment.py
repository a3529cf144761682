from prefalign.stages import job
from prefalign.stages.augment import augment

job.setup(snakemake)
augment(prompts_path=snakemake.input.prompts, model_dir=snakemake.input.model,
        manifest_path=snakemake.output.manifest, sheet_path=snakemake.output.sheet, name=snakemake.wildcards.aug,
        augmentation=snakemake.params.aug, seed=int(snakemake.wildcards.seed))
