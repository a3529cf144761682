from prefalign.settings import WorldSettings
from prefalign.stages import job
from prefalign.stages.make_world import make_world

job.setup(snakemake)
make_world(out_dir=snakemake.output[0], world=WorldSettings.of(snakemake.params.world))
