# Two commands do everything on a fresh machine: `make reproduce` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= 2
CONFIG ?= config.yaml
# Nothing ever comes from a model or dataset hub.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: reproduce ablations base-study report tables-list plan plans gpu-check test test-all lint dag clean venv bench-venv lock slurm-profile

# The environment is envs/requirements.lock: every package, transitive ones included, at an
# exact version with hashes, for Python 3.11 on Linux x86_64. `make venv` installs exactly it
# and resolves nothing; `make lock` regenerates it from pyproject.toml.
PYTHON ?= python3
LOCK ?= envs/requirements.lock
BENCH_LOCK := envs/bench.lock
UV_VERSION := 0.13.9
UV := .venv-uv/bin/uv
LOCK_FLAGS := --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
	--constraint envs/constraints.txt --quiet $(if $(UPGRADE),--upgrade)

venv: $(VENV)/.installed-$(notdir $(LOCK))
bench-venv:
	$(MAKE) venv LOCK=$(BENCH_LOCK)

# pip.conf here names local mirrors that may be absent; their warnings are filtered. pip (not
# uv) installs, since it reads this machine's pip configuration (torch from local wheels).
# One stamp per lock: switching locks re-syncs, and names the lock for tests/test_environment.py.
$(VENV)/.installed-%.lock: envs/%.lock pyproject.toml
	$(PYTHON) -m prefalign.environment check --lock $<
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	rm -f $(VENV)/.installed-*
	$(PY) -m pip install -q --no-deps --require-hashes -r $< 2> >(grep -v "^WARNING: Location" >&2)
	extra=$$($(PY) -m prefalign.environment extraneous --lock $<); \
	    if [ -n "$$extra" ]; then $(PY) -m pip uninstall -q -y $$extra; fi
	$(PY) -m pip install -q --no-deps --no-build-isolation -e . 2> >(grep -v "^WARNING: Location" >&2)
	$(PY) -m pip check
	$(PY) -c "import torch, transformers, peft, lmms_eval, snakemake, decord"
	echo $< > $@

lock: $(UV)
	$(UV) pip compile pyproject.toml --extra test $(LOCK_FLAGS) -o envs/requirements.lock
	$(UV) pip compile pyproject.toml --extra test --extra bench $(LOCK_FLAGS) \
	    --constraint envs/requirements.lock -o $(BENCH_LOCK)
	$(PYTHON) -m prefalign.environment conda --lock envs/requirements.lock --out envs/prefalign.yaml
$(UV):
	$(PYTHON) -m venv .venv-uv
	.venv-uv/bin/pip install -q uv==$(UV_VERSION) 2> >(grep -v "^WARNING: Location" >&2)

# Jobs run in forks of one process that has imported torch, transformers and lmms-eval
# (prefalign/forkserver.py): most of a miniature job was its imports.
# Recovery without flags: after a kill -9 Snakemake leaves its lock (which names no process)
# and marks the outputs it was writing incomplete. The run holds a lock of its own (flock on
# .snakemake/make.lock); whoever gets it knows no other `make` run is going in this folder, so
# it releases Snakemake's lock and reruns incomplete jobs. (A `snakemake` started by hand
# beside it is not seen: Snakemake's own lock guards that case only while it holds.)
SNAKEMAKE_RUN = $(PY) -m prefalign.config $(1) && mkdir -p .snakemake && flock --nonblock --conflict-exit-code 75 .snakemake/make.lock \
	bash -c '$(VENV)/bin/snakemake --unlock --configfile $(1) >/dev/null 2>&1; \
	$(PY) -m prefalign.forkserver -- $(VENV)/bin/snakemake --cores $(CORES) --rerun-incomplete --configfile $(1)' \
	|| { rc=$$?; [ $$rc -ne 75 ] || echo "another make run holds .snakemake/make.lock" >&2; exit $$rc; }

# After the run: <results>/results.md, the results document generated from its files
# (prefalign/results_doc.py); a measured run that lands is copied to docs/results.md.
reproduce: venv
	$(call SNAKEMAKE_RUN,$(CONFIG))
	$(PY) -m prefalign.results_doc --configfile $(CONFIG) --command "make reproduce CONFIG=$(CONFIG)"
	@echo "Tables: $$($(PY) -m prefalign.config $(CONFIG) --results)/tables/ (main.md, deltas.md, label_accuracy.md, main.png); make report writes report.html"

# The Snakemake report of a finished run, one self-contained file to open in a browser:
# <results>/report.html (tables, forest plot, training curves, gallery; report/workflow.rst).
report: venv
	results=$$($(PY) -m prefalign.config $(CONFIG) --results) && \
	    $(VENV)/bin/snakemake --configfile $(CONFIG) --report $$results/report.html

# The papers' ablations and the factorial: the default plus more runs, into the same results.
ablations: venv
	$(call SNAKEMAKE_RUN,configs/miniature_ablations.yaml)
	@echo "Tables: results/tables/ (the paper tables of make tables-list CONFIG=configs/miniature_ablations.yaml)"

# The base-model study (issue: base-model variance): `make reproduce` over each base seed of
# STUDY (`base_seeds:`), each base in its own results folder, then <results>/base_study.md,
# which the results document then holds beside the default's paired intervals.
STUDY ?= configs/miniature_base_seeds.yaml
base-study: venv
	for c in $$($(PY) -m prefalign.base_study configs $(STUDY)); do $(MAKE) reproduce CONFIG=$$c || exit $$?; done
	$(PY) -m prefalign.base_study report $(STUDY)
	$(PY) -m prefalign.results_doc --configfile $(STUDY) --command "make base-study STUDY=$(STUDY)"

# The paper tables of a config (`paper_tables:`), each a target that builds exactly its runs:
# .venv/bin/snakemake --configfile $(CONFIG) <results>/tables/<name>.md
tables-list: venv
	$(PY) -m prefalign.paper_tables $(CONFIG)

# What a real config costs per stage (FLOPs, GPU-hours, memory per GPU, disk), before submitting it:
# make plan CONFIG=configs/seva_llava15_7b.yaml [PLAN_FLAGS="--gpu h100"]; `make plans` writes docs/plan.md
# for every real config (prefalign/plan.py states the rules and assumptions).
REAL_CONFIGS := $(filter-out configs/miniature_ablations.yaml,$(wildcard configs/*.yaml))
plan: venv
	$(PY) -m prefalign.plan $(CONFIG) $(PLAN_FLAGS)

plans: venv
	{ echo "# Resource plans of the real configs"; echo; \
	  echo "Generated by \`make plans\` (\`python -m prefalign.plan\` on each real config) at commit $$(git rev-parse --short HEAD)."; \
	  echo "Estimates from the models' shapes and the configs' counts under the stated rules, not measurements."; echo; \
	  $(PY) -m prefalign.plan $(REAL_CONFIGS); echo; \
	  echo "## Against the papers' reported costs"; echo; \
	  echo "SeVa (Sec. 4.1, Table 3): LLaVA-1.5-7B trained for about 0.7 h on 8 A800 on the 16k prompts, of which about half are kept (the config repeats the pairs twice, as SeVa's code does):"; echo; \
	  echo '```'; echo "python -m prefalign.plan configs/seva_llava15_7b.yaml --gpu a800 --kept 0.5 --train-hours seva_n800=0.7"; \
	  $(PY) -m prefalign.plan configs/seva_llava15_7b.yaml --gpu a800 --kept 0.5 --train-hours seva_n800=0.7 | grep implies; echo '```'; echo; \
	  echo "ConSR (Sec. 4.1): the entire training process 5 h (Qwen2.5-VL-7B) and 7 h (LLaVA-OV-7B) on one A100; read as the training stage's time they imply (a lower bound: the process holds more than training):"; echo; \
	  echo '```'; for c in consr_qwen2_5_vl_7b:5 consr_ov_7b:7; do \
	    echo "python -m prefalign.plan configs/$${c%:*}.yaml --train-hours consr=$${c#*:}"; \
	    $(PY) -m prefalign.plan configs/$${c%:*}.yaml --train-hours consr=$${c#*:} | grep implies; done; echo '```'; \
	} > docs/plan.md

# On a machine with a CUDA GPU, with only torch and transformers installed (no venv, no network):
# the four base models at their real shapes in bf16, sampling, scoring and training steps of each
# objective, measured beside the planner's estimates (benchmarks/gpu_check.py; about 40 s a model
# on an H200, docs/gpu_check.md).
# GPU_CHECK_FLAGS="--size tiny" runs the reduced shapes anywhere (the CPU test).
gpu-check:
	$(PYTHON) benchmarks/gpu_check.py $(GPU_CHECK_FLAGS)

# `make test` (CI) leaves out the one-node SLURM run (marker `cluster`) and the longer runs of
# paths it covers more cheaply (marker `extended`); `make test-all` runs every test.
test: venv
	$(PY) -m pytest -q --durations=15 -m "not cluster and not extended" tests

test-all: venv
	$(PY) -m pytest -q --durations=15 tests

# tests/test_workflow.py and tests/test_structure.py run the same three checks
lint: venv
	$(VENV)/bin/snakemake --lint --configfile $(CONFIG)
	$(VENV)/bin/snakefmt --check Snakefile rules/
	$(VENV)/bin/ruff check prefalign scripts tests benchmarks

dag: venv
	$(VENV)/bin/snakemake --rulegraph --configfile $(CONFIG) | dot -Tpng > dag.png

# Install profiles/slurm as the user profile `slurm`, so `snakemake --profile slurm` finds it.
# Model stages go to SLURM_PARTITION, the CPU stages to SLURM_CPU_PARTITION. A retry scales
# memory and time by the attempt, capped at SLURM_MAX_MEM_MB and SLURM_MAX_RUNTIME_MIN; the
# training stages get SIGTERM SLURM_SIGNAL_S seconds before their limit (checkpoint, stop).
SLURM_PARTITION ?= gpu
SLURM_CPU_PARTITION ?= $(SLURM_PARTITION)
SLURM_ACCOUNT ?=
SLURM_GPUS ?= 1
SLURM_CPUS ?= 8
SLURM_MEM_MB ?= 64000
SLURM_SMALL_MEM_MB ?= 8000
SLURM_MAX_MEM_MB ?= 256000
SLURM_MAX_RUNTIME_MIN ?= 2880
SLURM_SIGNAL_S ?= 600
SLURM_PROFILE_DIR ?= $(or $(XDG_CONFIG_HOME),$(HOME)/.config)/snakemake/slurm
slurm-profile:
	mkdir -p $(SLURM_PROFILE_DIR)
	sed -e 's/@PARTITION@/$(SLURM_PARTITION)/' -e 's/@CPU_PARTITION@/$(SLURM_CPU_PARTITION)/' \
	    -e 's/@GPUS@/$(SLURM_GPUS)/' -e 's/@CPUS@/$(SLURM_CPUS)/' \
	    -e 's/@MEM@/$(SLURM_MEM_MB)/' -e 's/@SMALL_MEM@/$(SLURM_SMALL_MEM_MB)/' \
	    -e 's/@MAX_MEM@/$(SLURM_MAX_MEM_MB)/' -e 's/@MAX_RUNTIME@/$(SLURM_MAX_RUNTIME_MIN)/' \
	    -e 's/@SIGNAL_S@/$(SLURM_SIGNAL_S)/' \
	    $(if $(SLURM_ACCOUNT),-e 's/@ACCOUNT@/$(SLURM_ACCOUNT)/',-e '/@ACCOUNT@/d' -e 's/^jobs:/slurm-no-account: true\njobs:/') \
	    profiles/slurm/config.v9+.yaml > $(SLURM_PROFILE_DIR)/config.v9+.yaml
	@echo "installed $(SLURM_PROFILE_DIR)/config.v9+.yaml (model stages: partition $(SLURM_PARTITION), $(SLURM_GPUS) GPU per job; CPU stages: $(SLURM_CPU_PARTITION))"

clean:
	rm -rf results .snakemake
