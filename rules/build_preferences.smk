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
    log:
        f"{R}/logs/build_preferences.{{prefset}}.seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/build_preferences.{{prefset}}.seed{{seed}}.tsv"
    conda:
        "../envs/prefalign.yaml"
    params:
        pref=lambda wc: setting("preference_sets", wc.prefset),
        clip=lambda wc: setting("clip_models", config["preference_sets"][wc.prefset].get("clip")),
        consr_prompts=lambda wc: setting("consr_prompts", config["preference_sets"][wc.prefset].get("consr_prompts")),
        augmentations=lambda wc: named_entries("augmentations", ("preference_sets", wc.prefset)),
        source_format=lambda wc: config["prompt_sets"][config["preference_sets"][wc.prefset]["prompts"]]["source"][
            "format"
        ],
        upstream=lambda wc: upstream(config, ("preference_sets", wc.prefset)),
    script:
        "../scripts/build_preferences.py"
