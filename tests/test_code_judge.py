"""The code-execution judge: passing code wins, and every escape attempt is a recorded loss."""
import socket
import tempfile
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from cluster.config import ConfigError, JudgeConfig, parse_config
from judge.base import JudgeError
from judge.code import CodeJudge, extract_code
from judge.registry import JudgeSpec, make_judge
from judge.sandbox import SandboxLimits, run_python
from prompts.example import Example

LIMITS = SandboxLimits(wall_seconds=2, cpu_seconds=1, memory_bytes=256 * 2**20, file_bytes=2**16, output_bytes=1024)
TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
GOOD = "```python\ndef add(a, b):\n    return a + b\n```"


def attacks(canary: Path, port: int) -> dict[str, tuple[str, str]]:
    """name -> (the response's code, the start of the reason it must lose with). Every payload
    aims at `canary` (a file beside which nothing may appear) rather than at anything real."""
    keep = canary.parent
    return {
        "infinite loop": ("while True:\n    pass", "cpu time limit"),
        "sleeps forever": ("import time\ntime.sleep(60)", "timeout after 2s"),
        "fork bomb": ("import os\nwhile True:\n    os.fork()", "blocked: os.fork"),
        "memory hog": ("hog = bytearray(2**31)", "memory limit"),
        "write outside": (f"open({str(keep / 'escaped.txt')!r}, 'w').write('x')", "blocked: writing"),
        "delete outside": (f"import os\nos.remove({str(canary)!r})", "blocked: os.remove"),
        "rm -rf": (f"import os\nos.system('rm -rf {keep}')", "blocked: os.system"),
        "subprocess": (f"import subprocess\nsubprocess.run(['touch', {str(keep / 'escaped.txt')!r}])", "blocked: "),
        "socket": (f"import socket\nsocket.create_connection(('127.0.0.1', {port}))", "blocked: socket"),
        "ctypes": ("import ctypes\nctypes.CDLL(None).system(b'true')", "blocked: "),
        "floods output": ("print('x' * 10**7)", "file size limit"),
        "exits 0 early": ("import sys\nsys.exit(0)", "exited before all tests ran"),
        "os._exit(0)": ("import os\nos._exit(0)", "exited before all tests ran"),
        "atexit": ("import atexit, os\natexit.register(lambda: os._exit(0))\nraise SystemExit(0)", "exited before all tests ran"),
        "dir_fd": (f"import os\nfd = os.open({str(keep)!r}, os.O_RDONLY)\nos.open('escaped.txt', os.O_WRONLY | os.O_CREAT, dir_fd=fd)", f"read outside the sandbox refused: {keep}"),
        "dir_fd inside": ("import os, sys\nfd = os.open(sys.prefix, os.O_RDONLY)\nos.open('escaped.txt', os.O_WRONLY | os.O_CREAT, dir_fd=fd)", "blocked: opening directory"),
        "raise limits": ("import resource\nresource.setrlimit(resource.RLIMIT_CPU, (10**6, 10**6))", "blocked: resource.setrlimit"),
        "find the guard": ("import gc\n[f for f in gc.get_objects() if getattr(f, '__name__', '') == 'guard']", "blocked: gc.get_objects"),
        "via a traceback": ("try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    e.__traceback__.tb_frame.f_back.f_locals", "blocked: object.__getattr__ tb_frame"),
        "read own memory": ("open('/proc/self/mem', 'rb')", "read outside the sandbox refused: /proc/self/mem"),
        "odd signal": ("import signal\nsignal.raise_signal(40)", "signal 40"),
    }


@pytest.fixture()
def listener():
    """A socket on loopback that records whether anything connected to it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    connected = []
    thread = threading.Thread(target=lambda: connected.append(_accept(server)), daemon=True)
    thread.start()
    yield server.getsockname()[1], connected
    server.close()


def _accept(server: socket.socket) -> bool:
    try:
        server.accept()
        return True
    except OSError:
        return False


def test_every_escape_is_contained_and_recorded_as_a_loss(tmp_path: Path, listener) -> None:
    port, connected = listener
    canary = tmp_path / "canary.txt"
    canary.write_text("still here")
    cases = attacks(canary, port)
    judge = CodeJudge(LIMITS, workers=2)
    problems = [Example("write add(a, b)", tests=TESTS)] * len(cases)
    bad = [f"def add(a, b):\n    return a + b\n{code}" for code, _ in cases.values()]
    verdicts = judge.judge(problems, [GOOD] * len(cases), bad)
    for (name, (_, expected)), v in zip(cases.items(), verdicts):
        assert (v.winner, v.score_a, v.score_b) == ("a", 1.0, 0.0), name
        assert v.reason.startswith("a: passed; b: " + expected), (name, v.reason)
    assert canary.read_text() == "still here"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["canary.txt"]
    assert not [n for n in connected if n]


def test_results_say_what_happened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the work directories go
    ok = run_python("print('hello')\n", LIMITS)
    assert ok.passed and ok.reason == "passed" and ok.stdout == "hello\n" and ok.returncode == 0
    failed = run_python("assert 1 + 1 == 3, 'arithmetic'\n", LIMITS)
    assert not failed.passed and failed.reason == "AssertionError: arithmetic"
    local = run_python("open('notes.txt', 'w').write('mine')\nassert open('notes.txt').read() == 'mine'\n", LIMITS)
    assert local.passed  # its own directory is its to use
    loud = run_python("print('y' * 5000)\n", LIMITS)
    assert loud.passed and len(loud.stdout) == 1024  # output read back is capped
    scratch = run_python("import tempfile\nwith tempfile.TemporaryFile() as f:\n    f.write(b'x')\n", LIMITS)
    assert scratch.passed  # temporary files go to its own directory
    assert not list(tmp_path.iterdir())  # every work directory removed


def test_code_is_taken_from_the_last_fence() -> None:
    assert extract_code("plan\n```python\nx = 1\n```\nbetter:\n```py\nx = 2\n```") == "x = 2\n"
    assert extract_code("x = 3") == "x = 3"
    assert extract_code("Sure:\n```python\nx = 4\n") == "x = 4\n"  # stopped at the closing fence, which is left out
    scores = CodeJudge(LIMITS).score_all([Example("?", tests=TESTS)] * 2, [GOOD, "def add(a, b): return a - b"])
    assert scores == [1.0, 0.0]


def test_recipe_sets_the_limits() -> None:
    section = JudgeConfig.model_validate({"kind": "code", "options": {"wall_seconds": 3, "memory_bytes": 2**28, "workers": 2}})
    judge = make_judge(JudgeSpec(section.kind, section.options))
    assert judge.limits.wall_seconds == 3 and judge.limits.memory_bytes == 2**28 and judge.workers == 2
    with pytest.raises(ValidationError, match="known options are cpu_seconds, file_bytes"):
        JudgeConfig.model_validate({"kind": "code", "options": {"timeout": 3}})
    with pytest.raises(ValidationError, match="must be a number above 0, got '5'"):
        JudgeConfig.model_validate({"kind": "code", "options": {"wall_seconds": "5"}})
    with pytest.raises(ConfigError, match="task kind 'addition' gives none"):
        parse_config({"judge": {"kind": "code"}})  # its answers are sums, not tests: every program would pass
    with pytest.raises(JudgeError, match="wall_seconds must be a number above 0, got 0"):
        CodeJudge(SandboxLimits(wall_seconds=0))
