"""The literal `snakemake --profile slurm` on a one-node SLURM cluster on loopback.

Needs root (CI runs as root): installs Debian's slurm-wlm and munge when missing, starts
munged, slurmctld and slurmd, installs the shipped profile with `make slurm-profile`, runs
the micro config through it (one evaluation job per benchmark), checks that its data and
evaluation files equal a local run's, and stops the daemons it started. Accounting is off, hence
`slurm-status-command: squeue` in the profile.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.cluster,
              pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")]

SLURM_CONF = """ClusterName=prefalign
SlurmctldHost={host}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/var/run/slurmctld.pid
SlurmdPidFile=/var/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
NodeName={host} CPUs={cpus} RealMemory={mem}
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _running(name):
    return subprocess.run(["pgrep", "-x", name], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def slurm_cluster():
    if not shutil.which("slurmctld"):
        subprocess.run(["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"], check=True,
                       capture_output=True, timeout=600)
    host = socket.gethostname().split(".")[0]
    mem = int(open("/proc/meminfo").read().split()[1]) // 1024 - 2048
    started = []
    if not _running("slurmctld"):
        for d in ("/etc/slurm", "/var/spool/slurmctld", "/var/spool/slurmd", "/var/log/slurm", "/run/munge"):
            Path(d).mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        Path("/etc/slurm/slurm.conf").write_text(SLURM_CONF.format(host=host, cpus=os.cpu_count(), mem=mem))
        for daemon in (["munged", "--force"], ["slurmctld"], ["slurmd"]):
            if not _running(daemon[0]):
                subprocess.run(daemon, check=True, capture_output=True)
                started.append(daemon[0])
    for _ in range(30):
        if "idle" in subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout:
            break
        time.sleep(1)
    else:
        pytest.fail("the SLURM node did not come up idle: " + Path("/var/log/slurm/slurmctld.log").read_text()[-2000:])
    yield
    subprocess.run(["scancel", "-u", "root"], capture_output=True)
    for name in reversed(started):
        subprocess.run(["pkill", "-x", name], capture_output=True)


def _snakemake(args, env, cwd=ROOT, timeout=1800):
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def installed_profile(tmp_path) -> dict:
    """`make slurm-profile` for the one-node cluster, in a config home of the test's own; the
    environment that finds it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    make = subprocess.run(["make", "-s", "slurm-profile", "SLURM_PARTITION=debug", "SLURM_GPUS=0", "SLURM_CPUS=2",
                           "SLURM_MEM_MB=3000", "SLURM_SMALL_MEM_MB=1000", "SLURM_MAX_MEM_MB=6000"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert make.returncode == 0, make.stderr
    assert (tmp_path / "xdg" / "snakemake" / "slurm" / "config.v9+.yaml").exists()
    return env


def workflow_copy(tmp_path) -> Path:
    """A copy of the workflow, so a run's .snakemake folder is its own."""
    work = tmp_path / "wf"
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".venv", ".snakemake", "results", ".git"))
    return work


def test_micro_config_through_the_installed_profile_equals_a_local_run(slurm_cluster, micro_run, tmp_path):
    """The cluster run also evaluates one job per benchmark (`split_tasks`), joined on the
    submitting node: its evaluation files equal the local run's single jobs'."""
    import yaml

    env = installed_profile(tmp_path)
    cfg = yaml.safe_load((ROOT / "tests/configs/micro.yaml").read_text())
    cfg["evaluation"]["split_tasks"] = True
    (tmp_path / "micro_split.yaml").write_text(yaml.safe_dump(cfg))
    work = workflow_copy(tmp_path)
    on_slurm = _snakemake(["--profile", "slurm", "--max-threads", "1",  # as the local run (conftest)
                           "--configfile", str(tmp_path / "micro_split.yaml"),
                           "--config", f"results={tmp_path / 'slurm'}"], env, work)
    assert on_slurm.returncode == 0, on_slurm.stdout[-4000:] + on_slurm.stderr[-4000:]
    assert "has been submitted with SLURM jobid" in on_slurm.stdout + on_slurm.stderr
    local, _, done = micro_run
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    data = ["world/sft.json", "world/pool.json", "seed1/prompts/smpro.jsonl", "seed1/augment/seva.noise800.jsonl",
            "seed1/responses/seva.clean.greedy.jsonl", "seed1/responses/smpro.noise800.sample2.jsonl",
            "seed1/preferences/seva.jsonl", "seed1/preferences/smpro.jsonl", "seed1/preferences/aspo.jsonl",
            "eval/base/results.json", "eval/base/samples.jsonl", "eval/seva.seed1/samples.jsonl"]
    for rel in data:  # equal up to the results folder (evaluation files name it)
        slurm_text = (tmp_path / "slurm" / rel).read_text().replace(str(tmp_path / "slurm"), "<results>")
        local_text = (local / rel).read_text().replace(str(local), "<results>")
        assert slurm_text == local_text, rel
    assert (tmp_path / "slurm" / "tables" / "main.md").exists()
    assert not list((tmp_path / "slurm" / "eval" / "tasks").rglob("results.json"))  # per-task folders are temp()


def test_training_signalled_by_slurm_checkpoints_and_the_retry_resumes(slurm_cluster, micro_run, tmp_path):
    """SIGTERM from SLURM (what the profile's `--signal=TERM@N` sends the training stages before
    their time limit, and what preemption sends) reaches the training through the job's srun
    step and Snakemake: it checkpoints after the current step and stops; the profile's retry
    resumes there and ends with the local run's adapter, byte for byte. The job stops itself
    at step 1 (SIGSTOP), so the signal comes at a known step; `scancel --signal=TERM` delivers
    it to the job's steps as `--signal` does. One train job of a copy of the local micro run."""
    env = installed_profile(tmp_path)
    local, _, done = micro_run
    assert done.returncode == 0
    results = tmp_path / "results"
    shutil.copytree(local, results)  # results are relocatable
    adapter = results / "seed1/train/oracle/adapter"
    train_log = results / "logs/train.oracle.seed1.log"
    train_log.unlink()
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", str(adapter), "--profile", "slurm",
                             "--max-threads", "1", "--configfile", "tests/configs/micro.yaml",
                             "--config", f"results={results}", "--rerun-triggers", "mtime",  # this job only
                             "--forcerun", "train"], cwd=workflow_copy(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**env, "PREFALIGN_FAULT_AT_STEP": "1", "PREFALIGN_FAULT_SIGNAL": "STOP"})
    deadline = time.time() + 600
    while not (train_log.exists() and "PREFALIGN_FAULT_AT_STEP=1" in train_log.read_text()):
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()[-4000:] if proc.stdout else ""
        time.sleep(1)
    jobs = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split()
    assert len(jobs) == 1, jobs
    for sig in ("TERM", "CONT"):
        subprocess.run(["scancel", f"--signal={sig}", jobs[0]], check=True)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-4000:]
    assert "resumed from step 2" in train_log.read_text(), train_log.read_text()[-3000:]
    for name in ("adapter_model.safetensors",):
        assert (adapter / name).read_bytes() == (local / "seed1/train/oracle/adapter" / name).read_bytes()
    assert (results / "seed1/train/oracle/log.csv").read_text() == (local / "seed1/train/oracle/log.csv").read_text()
