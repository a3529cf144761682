"""prefalign.forkserver: a job script handed to the server runs in a fork of it, with the
script's streams, folder, environment and arguments, and its exit status comes back; killing
the script stops the job."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from prefalign import forkserver

JOB = textwrap.dedent("""
    import json, os, sys, time
    from prefalign.forkserver import run_in_forkserver
    run_in_forkserver()
    print(json.dumps({"job": os.getpid(), "cwd": os.getcwd(), "args": sys.argv[1:],
                      "env": os.environ.get("MARKER")}), flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    mode = sys.argv[1]
    if mode == "sleep":
        open(sys.argv[2], "w").write(str(os.getpid()))
        time.sleep(60)
    if mode == "raise":
        raise ValueError("the job failed")
    sys.exit(int(mode))
""")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server that preloads nothing (the test jobs import nothing heavy)."""
    folder = tmp_path_factory.mktemp("forkserver")
    path = folder / "socket"
    proc = subprocess.Popen([sys.executable, "-c", f"from prefalign.forkserver import serve; serve({str(path)!r}, ())"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if path.exists():
            break
        time.sleep(0.05)
    yield path
    proc.terminate()
    proc.wait(10)


def start_job(tmp_path, socket_path, *args, marker="m1"):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    env = {**os.environ, "MARKER": marker}
    if socket_path:
        env[forkserver.SOCKET_ENV] = str(socket_path)
    proc = subprocess.Popen([sys.executable, str(script), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc


def fields(stdout: str) -> dict:
    return json.loads(stdout.splitlines()[0])


def test_a_job_runs_in_a_fork_with_the_scripts_streams_folder_arguments_and_environment(tmp_path, server):
    proc = start_job(tmp_path, server, "0", marker="hello")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    seen = fields(out)
    assert seen["job"] != proc.pid  # it ran in the server's fork, not in the script's process
    assert seen["cwd"] == str(tmp_path) and seen["args"] == ["0"] and seen["env"] == "hello"
    assert "to stderr" in err


@pytest.mark.parametrize("mode,code", [("0", 0), ("3", 3), ("raise", 1)])
def test_the_jobs_exit_status_is_the_scripts(tmp_path, server, mode, code):
    proc = start_job(tmp_path, server, mode)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    if mode == "raise":
        assert "ValueError: the job failed" in err  # the traceback reaches the script's stderr


def alive(pid: int) -> bool:
    """Running, not a zombie. The process may be reaped between any two looks (a fresh
    clone's `make test` once read its /proc entry as it went: ProcessLookupError)."""
    try:
        os.kill(pid, 0)
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return False


def wait_for(path: Path) -> int:
    for _ in range(400):
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.05)
    raise TimeoutError(path)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGKILL, -signal.SIGKILL)])
def test_killing_the_script_stops_the_job(tmp_path, server, sig, code):
    proc = start_job(tmp_path, server, "sleep", str(tmp_path / "pid"))
    job = wait_for(tmp_path / "pid")
    assert job != proc.pid
    proc.send_signal(sig)  # TERM is passed on to the job; KILL closes the connection
    assert proc.wait(30) == code
    for _ in range(200):
        if not alive(job):
            break
        time.sleep(0.05)
    assert not alive(job)


def test_without_a_reachable_server_the_script_runs_in_its_own_process(tmp_path):
    proc = start_job(tmp_path, tmp_path / "no-such-socket", "0")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and fields(out)["job"] == proc.pid
    assert "not reachable" in err
