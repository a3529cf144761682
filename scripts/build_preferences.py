from prefalign import stages

stages.setup(snakemake)
responses = {tuple(k.split("|")): v for k, v in snakemake.input.items() if "|" in k}
p = snakemake.params
stages.build_preferences(snakemake.input.prompts, responses, snakemake.output.prefs,
                         snakemake.output.stats, p.pref, model_dir=snakemake.input.get("model"),
                         clip_dir=snakemake.input.get("clip"), clip_cfg=p.clip, device=p.device,
                         dtype=p.dtype, seed=int(snakemake.wildcards.seed),
                         descriptions_path=snakemake.input.get("descriptions"),
                         consr_prompts=p.consr_prompts, augmentations=p.augmentations,
                         world_dir=snakemake.input.get("world"))
