from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from prefalign.settings import ObjectiveSettings, TrainingSettings
from prefalign.stages.train import train

job.setup(snakemake)
i, o, p, w = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards
# how often to checkpoint and where else metrics go are no params (they change no output, so
# they must not rerun the job)
settings = snakemake.config["training"][snakemake.config["runs"][w.run]["training"]]
train(prefs_path=i.prefs, model_dir=i.model, adapter_dir=o.adapter, log_csv=o.log, curves_png=o.curves,
      title=f"{w.run}.seed{w.seed}",
      objective=ObjectiveSettings.of(p.objective),
      training=TrainingSettings.of({**p.training, **{k: settings[k] for k in ("checkpoint_every", "report_to")}}),
      seed=int(w.seed), **job.placement(snakemake), reference_path=i.reference)
