from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from prefalign.augment import AugmentSpec
from prefalign.settings import ClipSettings, ConsrPromptsSettings, PreferenceSetSettings
from prefalign.stages.build_preferences import build_preferences

job.setup(snakemake)
i, p = snakemake.input, snakemake.params
build_preferences(prompts_path=i.prompts, response_paths={tuple(k.split("|")): v for k, v in i.items() if "|" in k},
                  out_path=snakemake.output.prefs, stats_path=snakemake.output.stats,
                  preference_set=PreferenceSetSettings.of(p.pref),
                  seed=int(snakemake.wildcards.seed), model_dir=i.get("model"), clip_dir=i.get("clip"),
                  clip=p.clip and ClipSettings.of(p.clip),
                  **job.placement(snakemake), descriptions_path=i.get("descriptions"),
                  consr_prompts=p.consr_prompts and ConsrPromptsSettings.of(p.consr_prompts),
                  augmentations={name: AugmentSpec.from_config(name, a) for name, a in p.augmentations.items()},
                  world_dir=i.get("world"), source_path=i.get("source"), source_format=p.source_format)
