"""The code judge is a reward: every way to pass without solving the problem is a loss whose
recorded reason says which, every read outside the sandbox is refused, the program never runs
as root, and stdin/stdout cases are compared outside the program."""
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from judge.base import JudgeError
from judge.code import CodeJudge, io_cases
from judge.sandbox import IOCase, SandboxLimits, SandboxResult, run_python
from prompts.example import Example

LIMITS = SandboxLimits(wall_seconds=2, cpu_seconds=1, memory_bytes=256 * 2**20, file_bytes=2**16, output_bytes=4096)
TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
CHECK = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n\ncheck(add)\n"
SETUP = 'def double(x):\n    return 2 * x\n\ndef add(a, b):\n    """a + b"""\n'


def subclass_hack(base: str, value: str) -> str:
    """A subclass of a built-in type that equals everything."""
    return (f"class Fake({base}):\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n"
            f"        return False\n    __hash__ = {base}.__hash__\n\ndef add(a, b):\n    return Fake({value})\n")


ALWAYS_EQUAL = "class AlwaysEqual:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n        return False\n"

# name -> (program, tests, setup, the reason it must lose with)
HACKS: dict[str, tuple[str, str, str, str]] = {
    "always equal": (ALWAYS_EQUAL + "def add(a, b):\n    return AlwaysEqual()\n", TESTS, "", "result not plain data: AlwaysEqual"),
    "always equal, reversed": (ALWAYS_EQUAL + "def add(a, b):\n    return AlwaysEqual()\n", "assert 5 == add(2, 3)\n", "", "result not plain data: AlwaysEqual"),
    "int subclass": (subclass_hack("int", "0"), TESTS, "", "result not plain data: Fake"),
    "str subclass": (subclass_hack("str", "''"), "assert add('a', 'b') == 'ab'\n", "", "result not plain data: Fake"),
    "list subclass": (subclass_hack("list", "[]"), "assert add([1], [2]) == [1, 2]\n", "", "result not plain data: Fake"),
    "dict subclass": (subclass_hack("dict", "{}"), "assert add({1: 2}, {}) == {1: 2}\n", "", "result not plain data: Fake"),
    "float subclass": (subclass_hack("float", "0.0"), "assert add(0.5, 0.25) == 0.75\n", "", "result not plain data: Fake"),
    "tuple subclass": (subclass_hack("tuple", "()"), "assert add((1,), (2,)) == (1, 2)\n", "", "result not plain data: Fake"),
    "bool subclass of int": ("class B(int):\n    def __bool__(self):\n        return True\n\ndef add(a, b):\n    return B(0)\n",
                             "assert add(2, 3)\n", "", "result not plain data: B"),
    "inside a list": (ALWAYS_EQUAL + "def add(a, b):\n    return [AlwaysEqual()]\n", "assert add(2, 3) == [5]\n", "",
                      "result not plain data: list containing AlwaysEqual"),
    "__bool__ flips": ("class Flip:\n    n = 0\n    def __bool__(self):\n        Flip.n += 1\n        return Flip.n == 1\n\n"
                       "def is_even(x):\n    return Flip()\n", "assert is_even(4)\nassert not is_even(3)\n", "", "result not plain data: Flip"),
    "__hash__ trick": ("class H:\n    def __hash__(self):\n        return hash(5)\n    def __eq__(self, other):\n        return True\n\n"
                       "def add(a, b):\n    return {H()}\n", "assert add(2, 3) == {5}\n", "", "result not plain data: set containing H"),
    "fake __class__": ("class Fake:\n    __class__ = property(lambda self: int)\n    def __eq__(self, other):\n        return True\n\n"
                       "def add(a, b):\n    return Fake()\n", "assert isinstance(add(2, 3), int) and add(2, 3) == 5\n", "",
                       "result not plain data: Fake"),
    "patched built-ins": ("import builtins\nclass Nope(Exception):\n    pass\nbuiltins.AssertionError = Nope\n"
                          "builtins.isinstance = lambda *a: True\nbuiltins.type = lambda *a: int\n\ndef add(a, b):\n    return 0\n",
                          "assert isinstance(add(2, 3), int) and type(add(2, 3)) is int\nassert add(2, 3) == 5\n", "", "AssertionError"),
    "redefined check": ("import builtins\ndef check(candidate):\n    pass\nbuiltins.check = check\n\ndef add(a, b):\n    return 0\n",
                        CHECK, "", "AssertionError"),
    "redefined setup helper": (SETUP + "def double(x):\n    return 10\n\ndef add(a, b):\n    return 0\n",
                               "assert double(add(2, 3)) == 10\n", SETUP, "AssertionError"),
    "sys.exit(0) first": ("import sys\ndef add(a, b):\n    return 0\nsys.exit(0)\n", TESTS, "", "exited before all tests ran"),
    "os._exit(0) first": ("import os\ndef add(a, b):\n    return 0\nos._exit(0)\n", TESTS, "", "exited before all tests ran"),
    "exits when called": ("import os\ndef add(a, b):\n    os._exit(0)\n", TESTS, "", "exited before all tests ran"),
    "SystemExit when called": ("def add(a, b):\n    raise SystemExit(0)\n", TESTS, "", "exited before all tests ran"),
    "SystemExit in __del__": ("class Boom:\n    def __del__(self):\n        raise SystemExit(0)\n\ndef add(a, b):\n    Boom()\n"
                              "    return 0\n", TESTS, "", "AssertionError"),
    "SystemExit in a result's __del__": ("class Boom:\n    def __del__(self):\n        raise SystemExit(0)\n\n"
                                         "def add(a, b):\n    return Boom()\n", TESTS, "", "result not plain data: Boom"),
    "prints a success marker": ("import sys\nprint('passed')\nprint('{\"passed\": true, \"reason\": \"passed\"}')\n"
                                "sys.stderr.write('passed\\n')\ndef add(a, b):\n    return 0\n", TESTS, "", "AssertionError"),
    "writes the verdict": ("open('../verdict', 'w').write('{\"passed\": true}')\ndef add(a, b):\n    return 0\n", TESTS, "",
                           "blocked: writing ../verdict"),
    "catches the refusal": ("try:\n    open('/etc/shadow').read()\nexcept OSError:\n    pass\n\ndef add(a, b):\n    return a + b\n",
                            TESTS, "", "read outside the sandbox refused: /etc/shadow"),
    "swallows the harness's error": (ALWAYS_EQUAL + "def add(a, b):\n    return AlwaysEqual()\n",
                                     "try:\n    assert add(2, 3) == 5\nexcept BaseException:\n    pass\n", "",
                                     "result not plain data: AlwaysEqual"),
}


def run_all(jobs: list[dict]) -> list[SandboxResult]:
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda job: run_python(limits=LIMITS, **job), jobs))


def test_every_reward_hack_is_a_loss_that_says_which() -> None:
    jobs = [{"source": program, "tests": tests, "setup": setup} for program, tests, setup, _ in HACKS.values()]
    for (name, (*_, expected)), result in zip(HACKS.items(), run_all(jobs)):
        assert not result.passed, name
        assert result.reason.startswith(expected), (name, result.reason, result.stderr[-500:])


def test_honest_answers_still_pass_in_every_shape() -> None:
    """Plain data of every kind crosses; setup helpers, classes, in-place changes and the
    program's own exceptions behave as they would in one process."""
    programs = {
        "setup and check": (SETUP + "def add(a, b):\n    return a + b\n", CHECK + "assert double(add(1, 2)) == 6\n", SETUP),
        "kinds of data": ("def f():\n    return [None, True, 1, 2.5, 'x', b'y', (1, (2,)), {1: [2]}, {3}, frozenset({4}), float('inf')]\n",
                          "assert f() == [None, True, 1, 2.5, 'x', b'y', (1, (2,)), {1: [2]}, {3}, frozenset({4}), float('inf')]\n"
                          "assert type(f()[6]) is tuple and f()[1] is True\n", ""),
        "a class": ("class Counter:\n    def __init__(self):\n        self.n = 0\n    def add(self, k):\n        self.n += k\n"
                    "        return self.n\n", "c = Counter()\nc.add(2)\nassert c.add(3) == 5 and c.n == 5\n", ""),
        "in place": ("def sort_in_place(xs):\n    xs.sort()\n", "xs = [3, 1, 2]\nsort_in_place(xs)\nassert xs == [1, 2, 3]\n", ""),
        "raises": ("def f(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x\n",
                   "try:\n    f(-1)\n    assert False\nexcept ValueError as e:\n    assert 'negative' in str(e)\n", ""),
        "a global": ("x = 41 + 1\n", "assert x == 42\n", ""),
        "a huge int": ("def f(n):\n    return 7 ** n\n", "assert f(9000) == 7 ** 9000\n", ""),
        "dataclass": ("from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int\n\ndef add(a, b):\n    return P(a).x + b\n",
                      TESTS, ""),
        "keyword arguments": ("def add(a, b=0, *, c=0):\n    return a + b + c\n", "assert add(1, c=2) == 3 and add(a=1, b=1) == 2\n", ""),
        "memory holds no tests": ("import sys\n\ndef tests_in_memory():\n    frame = sys._getframe(2)\n    while frame is not None:\n"
                                  "        if 'add(2, ' + '3) == 5' in repr(frame.f_locals) + repr(frame.f_globals):\n"
                                  "            return True\n        frame = frame.f_back\n    return False\n\n"
                                  "LEAKED = tests_in_memory()\n\ndef add(a, b):\n    return a + b\n",
                                  TESTS + "assert LEAKED is False\n", ""),
    }
    jobs = [{"source": program, "tests": tests, "setup": setup} for program, tests, setup in programs.values()]
    for name, result in zip(programs, run_all(jobs)):
        assert result.passed, (name, result.reason, result.stderr[-500:])


@pytest.fixture()
def outside_files(tmp_path: Path):
    """Files the program must not read: one in $HOME, one in a temporary directory outside its
    own, and Ray's token where there is one."""
    home = Path.home() / f".selfplay-sandbox-probe-{secrets.token_hex(4)}"
    home.write_text("secret")
    elsewhere = tmp_path / "secret.txt"
    elsewhere.write_text("secret")
    ray_token = Path.home() / ".ray" / "auth_token"
    yield [home, elsewhere] + ([ray_token] if ray_token.exists() else [])
    home.unlink()


def test_every_read_outside_the_sandbox_is_refused(outside_files: list[Path]) -> None:
    good = "def add(a, b):\n    return a + b\n"
    reads = {f"open {p}": (f"open({str(p)!r}).read()\n", str(p)) for p in ["/etc/shadow", *outside_files]}
    reads |= {
        "the parent's secrets": ("open('../secret.json').read()\n", "../secret.json"),
        "os.open": ("import os\nos.open('/etc/hostname', os.O_RDONLY)\n", "/etc/hostname"),
        "io.open": ("import io\nio.open('/etc/passwd').read()\n", "/etc/passwd"),
        "pathlib": ("import pathlib\npathlib.Path('/etc/shadow').read_text()\n", "/etc/shadow"),
        "os.listdir": ("import os\nos.listdir('/')\n", "/"),
        "a path that shifts": ("import os\nclass Shifty:\n    n = 0\n    def __fspath__(self):\n        Shifty.n += 1\n"
                               "        return '/etc' if Shifty.n == 1 else '.'\nos.listdir(Shifty())\n", "/etc"),
        "os.scandir": (f"import os\nlist(os.scandir({str(Path.home())!r}))\n", str(Path.home())),
        "the project": (f"open({str(Path(__file__).resolve())!r}).read()\n", str(Path(__file__).resolve())),
    }
    jobs = [{"source": code + good, "tests": TESTS} for code, _ in reads.values()]
    for (name, (_, path)), result in zip(reads.items(), run_all(jobs)):
        assert not result.passed and result.reason == f"read outside the sandbox refused: {path}", (name, result.reason)
    dodges = {
        "ctypes": "import ctypes\nlibc = ctypes.CDLL(None)\nlibc.open(b'/etc/shadow', 0)\n",
    }
    for name, result in zip(dodges, run_all([{"source": code + good, "tests": TESTS} for code in dodges.values()])):
        assert not result.passed and result.reason.startswith("blocked: "), (name, result.reason)


def test_the_program_never_runs_as_root() -> None:
    result = run_python("import os\nprint(os.getuid(), os.geteuid())\nassert os.getuid() != 0 and os.geteuid() != 0\n", LIMITS)
    assert result.passed, result.reason
    uid, euid = map(int, result.stdout.split())
    assert uid == euid != 0


CASES = [IOCase("1 2\n", "3\n"), IOCase("40 2\n", "42")]


def test_stdin_stdout_cases_are_compared_outside_the_program() -> None:
    programs = {
        "correct": ("a, b = map(int, input().split())\nprint(a + b)\n", "passed"),
        "trailing whitespace and sys.exit(0)": ("import sys\na, b = map(int, sys.stdin.read().split())\n"
                                                "print(a + b, end='   \\n\\n\\n')\nsys.exit(0)\n", "passed"),
        "wrong output": ("a, b = map(int, input().split())\nprint(a * b)\n", "wrong answer on case 1"),
        "ignores its input": ("print(3)\n", "wrong answer on case 2"),
        "crashes": ("print(1 // 0)\n", "ZeroDivisionError: integer division or modulo by zero on case 1"),
        "reads the expected outputs": ("print(open('../secret.json').read())\n", "read outside the sandbox refused: ../secret.json on case 1"),

        "exits nonzero": ("import sys\nsys.exit(3)\n", "exit status 3 on case 1"),
    }
    results = run_all([{"source": program, "cases": CASES} for program, _ in programs.values()])
    for (name, (_, expected)), result in zip(programs.items(), results):
        assert result.reason == expected and result.passed == (expected == "passed"), (name, result.reason, result.stderr[-300:])
    # case 2's expected output is nowhere in the memory of the program's process, in no case
    search = ("import sys\n\ndef leaked(part):\n    needle = part + 'quokka'\n    frame = sys._getframe(2)\n"
              "    while frame is not None:\n        if needle in repr(frame.f_locals) + repr(frame.f_globals):\n"
              "            return True\n        frame = frame.f_back\n    return False\n\nprint('leak' if leaked('zebra-') else 'none')\n")
    result = run_python(search, LIMITS, cases=[IOCase("", "none"), IOCase("", "zebra-quokka")])
    assert result.reason == "wrong answer on case 2" and result.stdout == "none\n"


def test_a_slow_case_times_out_on_its_own() -> None:
    limits = SandboxLimits(wall_seconds=0.5, cpu_seconds=1, memory_bytes=256 * 2**20, file_bytes=2**16)
    program = "import time\nif input() == 'slow':\n    time.sleep(30)\nprint('ok')\n"
    result = run_python(program, limits, cases=[IOCase("fast\n", "ok"), IOCase("slow\n", "ok")])
    assert not result.passed and result.reason == "timeout after 0.5s on case 2" and result.seconds < 5


def test_the_judge_takes_cases_as_a_json_list() -> None:
    tests = '[{"input": "1 2\\n", "output": "3\\n"}, {"input": "40 2\\n", "output": "42\\n", "testtype": "stdin"}]'
    example = Example("sum two numbers from stdin", tests=tests)
    good = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    assert CodeJudge(LIMITS).score_all([example] * 2, [good, "print(3)"]) == [1.0, 0.0]
    assert io_cases("assert f(1) == [2]") is None and io_cases("[f(x) for x in y]") is None
    with pytest.raises(JudgeError, match='case 2 must be an object with text "input" and "output"'):
        io_cases('[{"input": "1", "output": "1"}, {"input": "2"}]')
    with pytest.raises(JudgeError, match="an empty list of stdin/stdout cases would let every program pass"):
        io_cases("[]")
