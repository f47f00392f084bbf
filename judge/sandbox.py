"""Running model-written Python where it can neither hang the run, nor touch or read the
machine, nor forge its own verdict.

Each run is a fresh `python -I` (judge/sandbox_launcher.py) in an empty temporary directory. It
walls itself in, forks the program *before* it reads the tests, the expected outputs and the
nonce, and judges from its own side of a pipe. Two kinds of tests:

- assert tests (code, as HumanEval's): they run in the harness process, not the program's; every
  name they do not define themselves (nor the setup: trusted code from the data set, whose
  functions stay its own except the stubs the answer fills) is fetched from the program as plain
  data (exact None, bool, int, float, str, bytes, list, tuple, dict, set, frozenset) or as a
  handle to call. An `assert f(x) == y` thus compares plain values where no program code runs;
- stdin/stdout cases (`IOCase`, the LiveCodeBench / Codeforces format): each case is a run of
  its own, and its stdout is compared with the expected output (trailing whitespace of each line
  and trailing blank lines aside) only after every case has run.

What is enforced where (Linux):

| threat | what stops it | layer | reason recorded |
| --- | --- | --- | --- |
| `__eq__`/`__bool__`/`__hash__` tricks, subclasses of int/str/list/dict/float/tuple, a faked `__class__` | only exact built-in plain data leaves the program; any other value is a handle the harness refuses to compare, test, hash or iterate | process boundary | `result not plain data: <type>` |
| patched built-ins (`isinstance`, `type`, `AssertionError`), redefined `check` or setup helpers | the tests run in the harness with its own built-ins and names | process boundary | the failing test |
| `sys.exit(0)`, `os._exit(0)`, SystemExit from `__del__` or `atexit` before the tests end | a pass is only the harness's verdict after its last test; exit status means nothing | process boundary | `exited before all tests ran` |
| a printed or written success marker, a forged verdict | the verdict goes to a descriptor the program never had, with a nonce it never saw | process boundary | - |
| reading the tests or expected outputs | read only after the program is forked (stdio: after every case ran), never in its memory or directory | process boundary | - |
| reading /etc/shadow, $HOME, ~/.ray, the run, the parent directory | a mount namespace whose root holds only /usr, the interpreter's files, /dev/null, /dev/zero, /dev/(u)random and the working directory; also the audit hook refuses `open`, `os.open`, `io.open`, pathlib, `os.listdir`, `os.scandir` outside those | kernel + hook | `read outside the sandbox refused: /etc/shadow` |
| running as root | setuid to `nobody` inside the namespace (the jail makes the interpreter reachable even under a private home); as a user, the capabilities of the user namespace are dropped; no_new_privs; /usr is nosuid | kernel | - |
| infinite loop | `RLIMIT_CPU` per process (SIGXCPU at `cpu_seconds`) | kernel | `cpu time limit` |
| sleeping or blocking forever | wall-clock timeout (per case for stdio); the process group is killed, and the program dies with the harness (`PR_SET_PDEATHSIG`) | kernel | `timeout after 5s` |
| memory hog | `RLIMIT_AS` (`memory_bytes`) | kernel | `memory limit` |
| flooding output or disk | `RLIMIT_FSIZE` (`file_bytes`); `output_bytes` of stdout and stderr are kept | kernel | `file size limit` |
| fork bomb, `os.system`, `subprocess`, `exec*`, `spawn*` | the audit hook refuses them; as nobody also `RLIMIT_NPROC` | hook + kernel | `blocked: os.fork` |
| network | an empty network namespace; the hook refuses sockets | kernel + hook | `blocked: socket.__new__` |
| writing, removing, renaming outside its directory | the jail (everything else read-only or absent) and the hook | kernel + hook | `blocked: writing /path` |
| `ctypes`, `_posixsubprocess`, frame walking, `gc` walks, ptrace of the harness | the hook refuses them; the harness is not dumpable | hook + kernel | `blocked: ...` |

Any refusal by the hook loses even when the program catches the PermissionError (the hook
reports it to the harness first). The kernel walls need mount namespaces: root with
CAP_SYS_ADMIN, or an ordinary user where unprivileged user namespaces are allowed. Without them,
root drops to `nobody` when the Python installation is readable by everyone and otherwise
refuses to run (`SandboxUnavailable`); an ordinary user keeps the audit hook alone, a
Python-level guard that a determined program could get around: run untrusted code from strong
models where namespaces work.
"""
from __future__ import annotations

import ast
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

LAUNCHER = Path(__file__).with_name("sandbox_launcher.py")
UNAVAILABLE = 97  # the launcher's exit status when it cannot contain the program


class SandboxUnavailable(RuntimeError):
    """This machine cannot run a program as the sandbox promises (root without namespaces and a
    Python installation nobody else can read). Scoring every answer as a loss would hide that."""


@dataclass(frozen=True)
class SandboxLimits:
    wall_seconds: float = 5.0  # per run; for stdin/stdout tests, per case
    cpu_seconds: int = 5
    memory_bytes: int = 512 * 2**20
    file_bytes: int = 2**20
    processes: int = 16
    output_bytes: int = 16 * 2**10  # of stdout (its start) and of stderr (its end), read back into the result


@dataclass(frozen=True)
class IOCase:
    """One stdin/stdout test: the program reads `input` and must print `output`."""

    input: str
    output: str


@dataclass(frozen=True)
class SandboxResult:
    passed: bool  # every test ran to the end and held (whatever exit status the program chose)
    reason: str  # "passed", or why not: "timeout after 5s", "memory limit", "blocked: socket", "AssertionError: ..."
    returncode: int | None  # the program's exit status (negative: the signal that ended it); None on a timeout
    stdout: str
    stderr: str
    seconds: float


def run_python(source: str, limits: SandboxLimits = SandboxLimits(), tests: str = "", *, setup: str = "",
               cases: Sequence[IOCase] | None = None) -> SandboxResult:
    """Run `source` under `limits` and judge it: against the assert `tests` (after the trusted
    `setup`, which `source` is expected to start with too), or, given `cases`, against each
    stdin/stdout case. Never raises for anything the program does."""
    if cases is not None and (not cases or tests):
        raise ValueError("give either assert tests or at least one stdin/stdout case, not both")
    base = Path(tempfile.mkdtemp(prefix="selfplay-sandbox-"))
    start = time.perf_counter()
    try:
        nonce = _lay_out(base, source, limits, tests, setup, cases)
        seconds = limits.wall_seconds * (len(cases) + 1 if cases else 1)
        code, timed_out = _launch(base, seconds)
        return _result(base, nonce, code, None if not timed_out else seconds, limits, time.perf_counter() - start)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _lay_out(base: Path, source: str, limits: SandboxLimits, tests: str, setup: str, cases: Sequence[IOCase] | None) -> str:
    """The files the launcher reads: what the program may see (`job.json`, `work/solution.py`)
    and what it may not (`secret.json`), and the empty `verdict`. Returns the nonce."""
    nonce = secrets.token_hex(16)
    work = base / "work"
    work.mkdir()
    (base / "jail").mkdir()
    (work / "solution.py").write_text(source)
    job = {"limits": asdict(limits), "mode": "asserts" if cases is None else "stdio", "inputs": [c.input for c in cases or []]}
    secret = {"nonce": nonce, "setup": setup, "slots": answer_slots(setup), "tests": tests, "outputs": [c.output for c in cases or []]}
    (base / "job.json").write_text(json.dumps(job))
    for name, text in (("secret.json", json.dumps(secret)), ("verdict", "")):
        (base / name).touch(mode=0o600)
        (base / name).write_text(text)
    if os.geteuid() == 0:
        import pwd

        os.chown(work, pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid)
        base.chmod(0o711)  # nobody reaches its directory by path where there is no jail
    return nonce


def answer_slots(setup: str) -> list[str]:
    """The setup's functions left for the answer to write: a body of only imports, a docstring,
    `pass` or `...` (HumanEval's prompts). The tests see the program's version of these and the
    setup's own version of every other name it defines (a redefined helper changes nothing)."""
    try:
        body = ast.parse(setup).body
    except SyntaxError:
        return []  # a fragment the answer completes: the harness leaves all its names to the program
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    return [node.name for node in body if isinstance(node, kinds) and all(map(_empty, node.body))]


def _empty(statement: ast.stmt) -> bool:
    if isinstance(statement, (ast.Pass, ast.Import, ast.ImportFrom)):
        return True
    return isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) and (
        isinstance(statement.value.value, str) or statement.value.value is ...)


def _launch(base: Path, seconds: float) -> tuple[int | None, bool]:
    """Start the launcher in the working directory and wait at most `seconds` for it."""
    with open(base / ".stdout", "wb") as out, open(base / ".stderr", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-I", str(LAUNCHER)], cwd=base / "work", stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            start_new_session=True, env={"PATH": "/usr/bin:/bin", "HOME": str(base / "work"), "LANG": "C.UTF-8"},
        )
        timed_out = _wait(proc, seconds)
    return (None if timed_out else proc.returncode), timed_out


def _result(base: Path, nonce: str, code: int | None, timeout: float | None, limits: SandboxLimits, seconds: float) -> SandboxResult:
    stdout, stderr = _head(base / ".stdout", limits.output_bytes), _tail(base / ".stderr", limits.output_bytes)
    if code == UNAVAILABLE:
        raise SandboxUnavailable(stderr.strip().splitlines()[-1] if stderr.strip() else "the sandbox could not start")
    verdict = _verdict(base / "verdict", nonce) if timeout is None else None
    if timeout is not None:
        return SandboxResult(False, f"timeout after {timeout:g}s", None, stdout, stderr, seconds)
    if verdict is None:  # the harness itself died: out of CPU or memory, or killed
        return SandboxResult(False, explain(code, stderr), code, stdout, stderr, seconds)
    status, passed = verdict.get("status"), verdict["passed"]
    reason = "passed" if passed else str(verdict.get("reason") or explain(status, stderr))
    if not passed and verdict.get("case"):
        reason += f" on case {verdict['case']}" if not reason.startswith("wrong answer") else ""
    return SandboxResult(passed, reason, status if type(status) is int else None, stdout, stderr, seconds)


def _verdict(path: Path, nonce: str) -> dict | None:
    """The harness's verdict, or None when there is none carrying the nonce."""
    try:
        verdict = json.loads(_head(path, 2**16) or "null")
    except ValueError:
        return None
    if not isinstance(verdict, dict) or verdict.get("nonce") != nonce or type(verdict.get("passed")) is not bool:
        return None
    return verdict


def _wait(proc: subprocess.Popen, seconds: float) -> bool:
    """Wait for the launcher; on timeout kill its whole process group. True when it timed out.
    Whatever it left running in its group is killed either way."""
    timed_out = not _ends_within(proc, seconds)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    return timed_out


def _ends_within(proc: subprocess.Popen, seconds: float) -> bool:
    """Whether the launcher ends within `seconds`, noticed the moment it does through a pidfd
    (Popen.wait with a timeout polls at up to 50 ms a step, longer than a whole run)."""
    try:
        watch = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux 5.3+
        try:
            proc.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        return bool(select.select([watch], [], [], seconds)[0])
    finally:
        os.close(watch)


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
    if code == 0:  # exit status 0 but no verdict of a pass: it left before its tests finished
        return "exited before all tests ran"
    if code is not None and code < 0:
        try:
            return SIGNALS.get(signal.Signals(-code), f"signal {signal.Signals(-code).name}")
        except ValueError:  # a real-time or unnamed signal
            return f"signal {-code}"
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else f"exit status {code}"
    if last.startswith("SystemExit: "):
        return "exited before all tests ran"
    if last.startswith("PermissionError: sandbox: "):
        return last.removeprefix("PermissionError: sandbox: ")
    if last.startswith("MemoryError"):
        return "memory limit"
    if "File too large" in last:
        return "file size limit"
    return last[:200]
