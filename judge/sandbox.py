"""Running model-written Python where it can neither hang the run nor touch the machine.

Each program runs in a fresh interpreter (`python -I`) in an empty temporary directory, with
layers of containment, each enforced by the kernel or the interpreter on Linux:

- wall-clock timeout: the whole process group is killed (SIGKILL) when it runs past it;
- resource limits (setrlimit): CPU seconds, address space, size of any file written
  (stdout and stderr go to files, so this caps output too), open files, no core dumps;
- when started as root: no network (a new, empty network namespace, where the kernel allows
  it), and, when the Python installation is readable by everyone, the program runs as
  `nobody`, so it cannot write outside world-writable places and the process-count limit
  (RLIMIT_NPROC, which root ignores) bounds a fork bomb;
- always: an audit hook (PEP 578) in the interpreter refuses sockets, starting processes
  (fork, exec, system, spawn, subprocess), ctypes, and writing, removing or renaming any
  path outside the working directory.

The audit hook is what holds when not root (a laptop); a determined program could escape a
Python-level guard, so run untrusted code as root on a disposable node or in a container.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

LAUNCHER = Path(__file__).with_name("sandbox_launcher.py")


@dataclass(frozen=True)
class SandboxLimits:
    wall_seconds: float = 5.0
    cpu_seconds: int = 5
    memory_bytes: int = 512 * 2**20
    file_bytes: int = 2**20
    processes: int = 16
    output_bytes: int = 16 * 2**10  # of stdout and of stderr, read back into the result


@dataclass(frozen=True)
class SandboxResult:
    passed: bool  # the program ran to the end and exited with status 0
    reason: str  # "passed", or why not: "timeout after 5s", "memory limit", "blocked: socket", "AssertionError: ..."
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float


def run_python(source: str, limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Run `source` as a program under `limits`; never raises for anything the program does."""
    work = Path(tempfile.mkdtemp(prefix="selfplay-sandbox-"))
    start = time.perf_counter()
    try:
        (work / "program.py").write_text(source)
        out_path, err_path = work / ".stdout", work / ".stderr"
        if os.geteuid() == 0:
            _hand_to_nobody(work)
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-I", str(LAUNCHER), json.dumps(asdict(limits))],
                cwd=work, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                env={"PATH": "/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8"},
            )
            timed_out = _wait(proc, limits.wall_seconds)
        stdout, stderr = _head(out_path, limits.output_bytes), _head(err_path, limits.output_bytes)
        code = None if timed_out else proc.returncode
        reason = f"timeout after {limits.wall_seconds:g}s" if timed_out else explain(code, stderr)
        return SandboxResult(code == 0, reason, code, stdout, stderr, time.perf_counter() - start)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _wait(proc: subprocess.Popen, seconds: float) -> bool:
    """Wait for the program; on timeout kill its whole process group. True when it timed out.
    Whatever it left running in its group is killed either way."""
    try:
        proc.wait(timeout=seconds)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    return timed_out


def _hand_to_nobody(work: Path) -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    os.chown(work, nobody.pw_uid, nobody.pw_gid)
    os.chown(work / "program.py", nobody.pw_uid, nobody.pw_gid)


def _head(path: Path, limit: int) -> str:
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", errors="replace")


SIGNALS = {signal.SIGXCPU: "cpu time limit", signal.SIGXFSZ: "file size limit", signal.SIGKILL: "killed"}


def explain(code: int | None, stderr: str) -> str:
    """Why a program did not pass, in a few words a person can read in a games table."""
    if code == 0:
        return "passed"
    if code is not None and code < 0:
        return SIGNALS.get(signal.Signals(-code), f"signal {signal.Signals(-code).name}")
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else f"exit status {code}"
    if last.startswith("PermissionError: sandbox: "):
        return "blocked: " + last.removeprefix("PermissionError: sandbox: ").removesuffix(" is not allowed")
    if last.startswith("MemoryError"):
        return "memory limit"
    if "File too large" in last:
        return "file size limit"
    return last[:200]
