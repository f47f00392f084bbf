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
import secrets
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
    output_bytes: int = 16 * 2**10  # of stdout (its start) and of stderr (its end), read back into the result


@dataclass(frozen=True)
class SandboxResult:
    passed: bool  # the program and its tests ran to the end (whatever exit status it chose)
    reason: str  # "passed", or why not: "timeout after 5s", "memory limit", "blocked: socket", "AssertionError: ..."
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float


def run_python(source: str, limits: SandboxLimits = SandboxLimits(), tests: str = "") -> SandboxResult:
    """Run `source`, then `tests` in the same namespace, under `limits`; never raises for
    anything the program does. It passes only when both ran to the end: the launcher then
    writes a nonce the program never saw, so no exit status can fake a pass."""
    work = Path(tempfile.mkdtemp(prefix="selfplay-sandbox-"))
    start = time.perf_counter()
    nonce = secrets.token_hex(16)
    try:
        (work / "solution.py").write_text(source)
        (work / "tests.py").write_text(tests)
        out_path, err_path = work / ".stdout", work / ".stderr"
        if os.geteuid() == 0:
            _hand_to_nobody(work)
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-I", str(LAUNCHER), json.dumps(asdict(limits))],
                cwd=work, stdin=subprocess.PIPE, stdout=out, stderr=err, start_new_session=True,
                env={"PATH": "/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8"},
            )
            try:
                proc.stdin.write((nonce + "\n").encode())
                proc.stdin.close()
            except OSError:
                pass  # it died before reading: its exit says why
            timed_out = _wait(proc, limits.wall_seconds)
        stdout, stderr = _head(out_path, limits.output_bytes), _tail(err_path, limits.output_bytes)
        passed = not timed_out and _head(work / ".passed", 64) == nonce
        code = None if timed_out else proc.returncode
        reason = f"timeout after {limits.wall_seconds:g}s" if timed_out else ("passed" if passed else explain(code, stderr))
        return SandboxResult(passed, reason, code, stdout, stderr, time.perf_counter() - start)
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
    for path in (work, work / "solution.py", work / "tests.py"):
        os.chown(path, nobody.pw_uid, nobody.pw_gid)


def _tail(path: Path, limit: int) -> str:
    """The end of a file: where a traceback says what went wrong."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - limit))
            return f.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _head(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return ""


SIGNALS = {signal.SIGXCPU: "cpu time limit", signal.SIGXFSZ: "file size limit", signal.SIGKILL: "killed"}


def explain(code: int | None, stderr: str) -> str:
    """Why a program that did not pass failed, in a few words a person can read in a games table."""
    if code == 0:  # exit status 0 but no nonce written: it left before its tests finished
        return "exited before its tests finished"
    if code is not None and code < 0:
        try:
            return SIGNALS.get(signal.Signals(-code), f"signal {signal.Signals(-code).name}")
        except ValueError:  # a real-time or unnamed signal
            return f"signal {-code}"
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else f"exit status {code}"
    if last.startswith("SystemExit: "):
        return "exited before its tests finished"
    if last.startswith("PermissionError: sandbox: "):
        return "blocked: " + last.removeprefix("PermissionError: sandbox: ").removesuffix(" is not allowed")
    if last.startswith("MemoryError"):
        return "memory limit"
    if "File too large" in last:
        return "file size limit"
    return last[:200]
