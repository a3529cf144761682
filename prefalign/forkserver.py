"""Run workflow jobs in forks of one process that has already imported torch, transformers,
peft and lmms-eval.

A Snakemake `script:` job is a fresh interpreter, and on the miniature most of a job is its
imports (`benchmarks/job_start.py` measures that fixed cost). Under
`python -m prefalign.forkserver -- snakemake ...` (what `make reproduce` and the tests run) a
server imports them once; each job's script, first thing (`job.run_in_forkserver`), hands its
argv, working folder, environment and standard streams to the server and waits; the server
forks, and the fork runs the same script from its first line, so the job computes exactly what
it would alone. The job's exit status comes back as the script's. Without the server (a plain
`snakemake`, a cluster job) or when it cannot be reached, the script runs in its own process.

Killing the waiting script (Snakemake cancelling a job) signals the fork; SIGKILL of the
script closes its connection, and the server kills the fork.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import runpy
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path

logger = logging.getLogger(__name__)

SOCKET_ENV = "PREFALIGN_FORKSERVER"
IN_FORK_ENV = "PREFALIGN_FORKSERVER_JOB"  # set in a job's fork: it must not delegate again
# What the stages import, heavy first. The model classes load on first use, so they are named.
PRELOAD = (
    "torch", "torchvision.transforms", "transformers", "transformers.models.llava.modeling_llava",
    "transformers.models.llava.processing_llava", "transformers.models.clip.image_processing_clip",
    "peft", "diffusers.schedulers.scheduling_ddpm", "lmms_eval.evaluator", "lmms_eval.models",
    "lmms_eval.tasks", "pandas", "safetensors.torch", "snakemake.script",
    "prefalign.stages.augment", "prefalign.stages.build_preferences", "prefalign.stages.describe_images",
    "prefalign.stages.evaluate", "prefalign.stages.make_world", "prefalign.stages.reference_logps",
    "prefalign.stages.revise_responses", "prefalign.stages.sample_prompts",
    "prefalign.stages.sample_responses", "prefalign.stages.tables", "prefalign.stages.train",
    "prefalign.stages.train_base_model", "prefalign.stages.train_clip", "prefalign.lmms_models",
)
_HEADER = struct.Struct("!I")


def _send(conn: socket.socket, message: dict, fds=()) -> None:
    data = json.dumps(message).encode()
    payload = _HEADER.pack(len(data)) + data
    if fds:
        sent = socket.send_fds(conn, [payload], list(fds))
        payload = payload[sent:]
    conn.sendall(payload)


def _receive(conn: socket.socket, with_fds: bool = False):
    """One message (and the file descriptors sent with it); None when the peer has gone."""
    if with_fds:
        data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    else:
        data, fds = conn.recv(1 << 16), []
    if not data:
        return None, fds
    while len(data) < _HEADER.size or len(data) < _HEADER.size + _HEADER.unpack_from(data)[0]:
        more = conn.recv(1 << 16)
        if not more:
            return None, fds
        data += more
    (n,) = _HEADER.unpack_from(data)
    return json.loads(data[_HEADER.size:_HEADER.size + n]), fds


# --- the job's side ------------------------------------------------------------------------

def run_in_forkserver() -> None:
    """Called first by every job script: under a server, run this job in its fork and exit
    with its status (never returns); otherwise return and let the script run here."""
    path = os.environ.get(SOCKET_ENV)
    if not path or os.environ.get(IN_FORK_ENV):
        return
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError as e:
        print(f"prefalign.forkserver: {path} not reachable ({e}); the job runs in its own process",
              file=sys.stderr)
        conn.close()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    _send(conn, {"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}, fds=(0, 1, 2))
    started, _ = _receive(conn)
    if started is None:
        sys.exit("prefalign.forkserver: the server closed the connection before starting the job")
    pid = started["pid"]

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(signum, forward)
    ended, _ = _receive(conn)  # a forwarded signal does not interrupt the wait (PEP 475)
    os._exit(1 if ended is None else ended["returncode"])


# --- the server's side ---------------------------------------------------------------------

def _run_job(request: dict, fds: list[int]) -> int:
    """In the job's fork: become the job (streams, folder, environment) and run its script."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for handler in list(logging.root.handlers):  # the job configures its own (job.setup)
        logging.root.removeHandler(handler)
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ[IN_FORK_ENV] = "1"
    os.chdir(request["cwd"])
    sys.argv = list(request["argv"])
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
        code = 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - a job's failure is reported as the script's would be
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return code


def _handle(conn: socket.socket) -> None:
    """In a fork of the server, one connection: start the job's fork, report its status; if
    the job's script goes away first, kill the job."""
    request, fds = _receive(conn, with_fds=True)
    if request is None or len(fds) != 3:
        os._exit(1)
    pid = os.fork()
    if pid == 0:
        conn.close()
        os._exit(_run_job(request, fds))
    for fd in fds:
        os.close(fd)
    _send(conn, {"pid": pid})
    pidfd = os.pidfd_open(pid)
    ready, _, _ = select.select([pidfd, conn], [], [])
    if pidfd not in ready:  # the script was killed: its job goes too
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    try:
        _send(conn, {"returncode": code if code >= 0 else 128 - code})
    except OSError:
        pass
    os._exit(0)


def preload(modules=PRELOAD) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - a job that needs it imports it (and fails) itself
            logger.warning("forkserver: could not preload %s: %s", name, e)


def serve(path: str, modules=PRELOAD) -> None:
    """Import `modules`, then accept jobs on the Unix socket `path` until terminated."""
    preload(modules)
    if threading.active_count() > 1:  # a fork copies one thread: the others' locks would hang it
        raise RuntimeError(f"forkserver: {threading.active_count()} threads after preloading; forks are unsafe")
    signal.signal(signal.SIGCHLD, lambda *_: _reap())
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    logger.info("forkserver: ready on %s", path)
    while True:
        conn, _ = server.accept()  # retried after a SIGCHLD's handler (PEP 475)
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            server.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _handle(conn)
        conn.close()


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def main(argv=None) -> int:
    """`python -m prefalign.forkserver -- COMMAND ...`: run COMMAND (Snakemake) with a server
    beside it, its socket named in the environment; the server stops when COMMAND ends."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.exit("usage: python -m prefalign.forkserver -- COMMAND [ARG ...]")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    folder = tempfile.mkdtemp(prefix="prefalign-forkserver-")
    path = str(Path(folder) / "socket")
    server = os.fork()
    if server == 0:
        try:
            serve(path)
        finally:
            os._exit(1)
    env = {**os.environ, SOCKET_ENV: path}
    try:
        return subprocess.call(argv, env=env)
    finally:
        os.kill(server, signal.SIGTERM)
        os.waitpid(server, 0)
        Path(path).unlink(missing_ok=True)
        os.rmdir(folder)


if __name__ == "__main__":
    sys.exit(main())
