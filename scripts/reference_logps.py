from prefalign.stages import job
from prefalign.stages.reference_logps import reference_logps

job.setup(snakemake)
reference_logps(prefs_path=snakemake.input.prefs, model_dir=snakemake.input.model, out_path=snakemake.output[0],
                **job.placement(snakemake))
