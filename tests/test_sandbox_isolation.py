"""The kernel's walls, without the audit hook: after the launcher's `isolate`, a process that
bypassed every Python-level guard still cannot read /etc/shadow, the home directory, the
project or the directory around its own, and it is not root; the interpreter still imports."""
import json
import os
import subprocess
import sys
from pathlib import Path

from judge.sandbox import LAUNCHER

PROBE = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import sandbox_launcher as launcher
work, jail, probes = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
how = launcher.isolate(work, jail, launcher.interpreter_files())

def readable(path):
    try:
        with open(path, "rb") as f:
            f.read(1)
        return True
    except OSError:
        return False

import decimal, hashlib  # C modules from lib-dynload, loaded after the walls went up
open("mine.txt", "w").write("ok")
print(json.dumps({"how": how, "ids": [os.getuid(), os.geteuid(), os.getgid()], "readable": [p for p in probes if readable(p)],
                  "own": open("mine.txt").read(), "md5": hashlib.md5(b"").hexdigest()}))
"""


def test_outside_files_are_out_of_reach_of_the_kernel_too(tmp_path: Path) -> None:
    base = tmp_path / "run"
    (base / "work").mkdir(parents=True)
    (base / "jail").mkdir()
    (base / "secret.json").write_text("{}")
    home = Path.home() / f".selfplay-isolation-probe-{os.getpid()}"
    home.write_text("secret")
    if os.geteuid() == 0:
        os.chown(base / "work", 65534, 65534)
    probes = ["/etc/shadow", str(home), str(base / "secret.json"), str(Path(__file__).resolve()), "/etc/passwd"]
    try:
        out = subprocess.run([sys.executable, "-I", "-c", PROBE, str(LAUNCHER.parent), str(base / "work"), str(base / "jail"),
                              json.dumps(probes)], cwd=base / "work", capture_output=True, text=True, timeout=60)
    finally:
        home.unlink()
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert 0 not in report["ids"] and report["own"] == "ok" and report["md5"].startswith("d41d8")
    if report["how"] == "hook":  # an ordinary user where the kernel allows no user namespace: nothing more to check here
        return
    assert report["readable"] == [], report
