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

.PHONY: reproduce test lint dag clean venv slurm-profile

venv: $(VENV)/.installed

# pip.conf here names local mirrors that may be absent; their warnings are filtered.
# torch and torchvision first, pinned, so pip takes them from the local wheel mirror.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1 2> >(grep -v "^WARNING: Location" >&2)
	$(PY) -m pip install -q -e ".[test]" 2> >(grep -v "^WARNING: Location" >&2)
	$(PY) -c "import torch, transformers, peft, lmms_eval, snakemake, decord"
	touch $@

reproduce: venv
	$(VENV)/bin/snakemake --cores $(CORES) --configfile $(CONFIG)
	@echo "Tables: $$(sed -n 's/^results: *//p' $(CONFIG))/tables/ (main.md, label_accuracy.md, main.png)"

test: venv
	$(PY) -m pytest -q tests

lint: venv
	$(VENV)/bin/snakemake --lint --configfile $(CONFIG)

dag: venv
	$(VENV)/bin/snakemake --rulegraph --configfile $(CONFIG) | dot -Tpng > dag.png

# Install profiles/slurm as the user profile `slurm`, so `snakemake --profile slurm` finds it.
SLURM_PARTITION ?= gpu
SLURM_ACCOUNT ?=
SLURM_GPUS ?= 1
SLURM_CPUS ?= 8
SLURM_MEM_MB ?= 64000
SLURM_SMALL_MEM_MB ?= 8000
SLURM_PROFILE_DIR ?= $(or $(XDG_CONFIG_HOME),$(HOME)/.config)/snakemake/slurm
slurm-profile:
	mkdir -p $(SLURM_PROFILE_DIR)
	sed -e 's/@PARTITION@/$(SLURM_PARTITION)/' -e 's/@GPUS@/$(SLURM_GPUS)/' -e 's/@CPUS@/$(SLURM_CPUS)/' \
	    -e 's/@MEM@/$(SLURM_MEM_MB)/' -e 's/@SMALL_MEM@/$(SLURM_SMALL_MEM_MB)/' \
	    $(if $(SLURM_ACCOUNT),-e 's/@ACCOUNT@/$(SLURM_ACCOUNT)/',-e '/@ACCOUNT@/d' -e 's/^jobs:/slurm-no-account: true\njobs:/') \
	    profiles/slurm/config.v9+.yaml > $(SLURM_PROFILE_DIR)/config.v9+.yaml
	@echo "installed $(SLURM_PROFILE_DIR)/config.v9+.yaml (partition $(SLURM_PARTITION), $(SLURM_GPUS) GPU per GPU job)"

clean:
	rm -rf results .snakemake
