rule build_preferences:
    """Turn responses into ranked preference records with the configured method."""
    input:
        unpack(preference_responses),
        unpack(preference_models),
        unpack(preference_descriptions),
        unpack(preference_world),
        prompts=lambda wc: f"{R}/seed{wc.seed}/prompts/{config['preference_sets'][wc.prefset]['prompts']}.jsonl",
    output:
        prefs=f"{R}/seed{{seed}}/preferences/{{prefset}}.jsonl",
        stats=f"{R}/seed{{seed}}/preferences/{{prefset}}.stats.json",
    params:
        pref=lambda wc: config["preference_sets"][wc.prefset],
        clip=lambda wc: config.get("clip_models", {}).get(config["preference_sets"][wc.prefset].get("clip")),
        consr_prompts=lambda wc: config.get("consr_prompts", {}).get(
            config["preference_sets"][wc.prefset].get("consr_prompts")
        ),
        augmentations=config["augmentations"],
        device=config["device"],
        dtype=config["dtype"],
    conda:
        "../envs/prefalign.yaml"
    log:
        f"{R}/logs/build_preferences.{{prefset}}.seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/build_preferences.{{prefset}}.seed{{seed}}.tsv",
    script:
        "../scripts/build_preferences.py"
