from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from prefalign.stages.reference_logps import reference_logps

job.setup(snakemake)
reference_logps(prefs_path=snakemake.input.prefs, model_dir=snakemake.input.model, out_path=snakemake.output[0],
                **job.placement(snakemake))
