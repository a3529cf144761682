# prefalign: SeVa, SMPRO, ConSR and ASPO side by side.
# DAG: make_world -> train_base_model -> sample_prompts -> augment -> sample_responses
#      -> build_preferences -> train -> evaluate -> tables
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "prefalign/schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/make_world.smk"
include: "rules/train_base_model.smk"
include: "rules/sample_prompts.smk"
include: "rules/augment.smk"
include: "rules/sample_responses.smk"
include: "rules/build_preferences.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/tables.smk"


rule all:
    input:
        rules.tables.output,
    default_target: True
