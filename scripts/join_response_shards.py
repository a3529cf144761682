from prefalign.stages import job
from prefalign.stages.sample_responses import join_shards

job.setup(snakemake)
join_shards(shard_paths=snakemake.input, out_path=snakemake.output[0])
