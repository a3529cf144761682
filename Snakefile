# prefalign: SeVa, SMPRO, ConSR and ASPO side by side.
# DAG: make_world -> train_base_model -> sample_prompts -> augment -> sample_responses
#      (ConSR: -> describe_images -> revise_responses)
#      -> build_preferences (ASPO: + train_clip) -> reference_logps -> train -> evaluate
#      -> tables, paper_table (one per table of `paper_tables:`)
#      -> report_pages (`make report`: results/report.html)
from snakemake.utils import min_version

from prefalign.config import with_extends

min_version("9.0")


# The default config unless another full config is given (--configfile): Snakemake would
# otherwise merge the two, so a small test config would inherit the default's runs. A config
# may instead say `extends: config.yaml` to add to it (configs/miniature_ablations.yaml).
if "runs" not in config and "extends" not in config:

    configfile: "config.yaml"


if "extends" in config:
    extended = with_extends(config, workflow.basedir)
    config.clear()
    config.update(extended)


include: "rules/common.smk"
include: "rules/make_world.smk"
include: "rules/make_released.smk"
include: "rules/train_base_model.smk"
include: "rules/sample_prompts.smk"
include: "rules/augment.smk"
include: "rules/train_clip.smk"
include: "rules/sample_responses.smk"
include: "rules/describe_images.smk"
include: "rules/revise_responses.smk"
include: "rules/build_preferences.smk"
include: "rules/reference_logps.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/tables.smk"
include: "rules/paper_tables.smk"
include: "rules/report_pages.smk"


report: "report/workflow.rst"


rule all:
    default_target: True
    input:
        rules.tables.output,
        paper_table_outputs(),
        rules.report_pages.output,
