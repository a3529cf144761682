from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from prefalign.settings import WorldSettings
from prefalign.stages.make_world import make_world

job.setup(snakemake)
make_world(out_dir=snakemake.output[0], world=WorldSettings.of(snakemake.params.world))
