from prefalign.stages import job
from prefalign.stages.make_world import make_world

job.setup(snakemake)
make_world(out_dir=snakemake.output[0], world=snakemake.params.world)
