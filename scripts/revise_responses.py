from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from prefalign.settings import GenerationSettings
from prefalign.stages.revise_responses import revise_responses

job.setup(snakemake)
i, p, w = snakemake.input, snakemake.params, snakemake.wildcards
revise_responses(prompts_path=i.prompts, model_dir=i.model, descriptions_path=i.descriptions,
                 responses_path=i.responses, out_path=snakemake.output[0], template=p.template,
                 generation_name=w.gen, generation=GenerationSettings.of(p.gen), seed=int(w.seed),
                 **job.placement(snakemake))
