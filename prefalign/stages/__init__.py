"""One module per workflow stage, named as its rule file in `rules/`; `scripts/*.py` call a
stage's function with Snakemake's paths and params, by keyword. `job` is the glue every
script starts with."""
