from prefalign import stages

stages.setup(snakemake)
o = snakemake.output
stages.train_base_model(snakemake.input[0], o.model, o.log, o.competence,
                        snakemake.params.base, snakemake.params.image_size)
