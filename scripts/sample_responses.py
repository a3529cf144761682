from prefalign import stages

stages.setup(snakemake)
w, p = snakemake.wildcards, snakemake.params
if snakemake.input.get("shards"):  # sharded: join the shard files in order
    stages.join_shards(snakemake.input.shards, snakemake.output[0])
else:
    shard = (int(w.shard), int(w.nshards)) if "shard" in w.keys() else (0, 1)
    stages.sample_responses(snakemake.input.prompts, snakemake.input.model,
                            snakemake.input.manifest or None, snakemake.output[0], w.view, p.aug,
                            w.gen, p.gen, int(w.seed), p.device, p.dtype, shard)
