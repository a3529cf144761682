from prefalign import stages

stages.setup(snakemake)
responses = {tuple(k.split("|")): v for k, v in snakemake.input.items() if "|" in k}
stages.build_preferences(snakemake.input.prompts, responses, snakemake.output.prefs,
                         snakemake.output.stats, snakemake.params.pref,
                         model_dir=snakemake.input.get("model"), clip_dir=snakemake.input.get("clip"),
                         clip_cfg=snakemake.params.clip, device=snakemake.params.device,
                         dtype=snakemake.params.dtype)
