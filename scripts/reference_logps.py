from prefalign import stages
from prefalign.reference import reference_logps

stages.setup(snakemake)
reference_logps(snakemake.input.prefs, snakemake.input.model, snakemake.output[0], snakemake.params.device,
                snakemake.params.dtype)
