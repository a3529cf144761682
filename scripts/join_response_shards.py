from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from prefalign.stages.sample_responses import join_shards

job.setup(snakemake)
join_shards(shard_paths=snakemake.input.shards, prompts_path=snakemake.input.prompts, out_path=snakemake.output[0])
