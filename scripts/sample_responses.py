from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from prefalign.augment import AugmentSpec
from prefalign.settings import GenerationSettings
from prefalign.stages.sample_responses import sample_responses

job.setup(snakemake)
i, p, w = snakemake.input, snakemake.params, snakemake.wildcards
sample_responses(prompts_path=i.prompts, model_dir=i.model, manifest_path=i.manifest or None,
                 out_path=snakemake.output[0], view=w.view,
                 augmentation=p.aug and AugmentSpec.from_config(w.view, p.aug), generation_name=w.gen,
                 generation=GenerationSettings.of(p.gen), seed=int(w.seed), **job.placement(snakemake),
                 shard=(int(w.shard), int(w.nshards)) if "shard" in w.keys() else (0, 1))
