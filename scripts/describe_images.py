from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from prefalign.settings import GenerationSettings
from prefalign.stages.describe_images import describe_images

job.setup(snakemake)
p = snakemake.params
describe_images(prompts_path=snakemake.input.prompts, model_dir=snakemake.input.model, out_path=snakemake.output[0],
                prompt=p.prompt, generation=GenerationSettings.of(p.gen),
                seed=int(snakemake.wildcards.seed), **job.placement(snakemake))
