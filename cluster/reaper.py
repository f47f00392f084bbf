"""Ending a run's processes with it, even when its driver is killed outright.

A local Ray cluster's processes are the driver's children; when the driver is killed with
SIGKILL, Ray's own processes mostly follow, but its dashboard and runtime-env agents are
left running for ever. A small watcher started beside the driver (`python -m
cluster.reaper DRIVER_PID`, in its own session so a Ctrl-C to the driver does not reach it)
keeps the list of the driver's descendants under Ray's own processes (never other programs the
driver started, nor itself), and once the driver is gone ends whichever of them are still
alive: SIGTERM, then SIGKILL after a grace period.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_SECONDS = 1.0
GRACE_SECONDS = 3.0
Process = tuple[int, str]  # (pid, start time): a pid alone may be reused once it has ended


def processes() -> dict[int, tuple[int, str]]:  # read from /proc/<pid>/stat
    """pid -> (parent pid, start time) of every process now running."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after the command name, which may hold spaces
        table[int(entry.name)] = (int(fields[1]), fields[19])
    return table


def descendants(root: int, table: dict[int, tuple[int, str]] | None = None, only_ray: bool = False) -> set[Process]:
    """`root`'s descendants now; with `only_ray`, only those under its children that are Ray's
    own processes (gcs_server, raylet, the dashboard...), never other programs the driver started."""
    table = processes() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    stack = [pid for pid in children.get(root, []) if not only_ray or _is_ray(pid)]
    found = set()
    while stack:
        pid = stack.pop()
        found.add((pid, table[pid][1]))
        stack.extend(children.get(pid, []))
    return found


def _is_ray(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"/ray/" in command or command.startswith(b"ray::")


def alive(known: set[Process]) -> set[Process]:
    """Those of `known` still running (same pid, same start time)."""
    table = processes()
    return {(pid, start) for pid, start in known if table.get(pid, (0, ""))[1] == start}


def end(known: set[Process]) -> None:
    """SIGTERM, a grace period, then SIGKILL for whatever is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid, _ in alive(known):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + GRACE_SECONDS
        while alive(known) and time.monotonic() < deadline:
            time.sleep(0.1)


def watch(driver: int) -> None:
    """Remember the driver's descendants while it lives; end the ones left when it is gone."""
    known: set[Process] = set()
    driver_start = processes().get(driver, (0, ""))[1]
    if not driver_start:
        return  # gone before this watcher began: nothing of its is known
    while True:
        table = processes()
        if table.get(driver, (0, ""))[1] != driver_start:
            break
        known = alive(known) | descendants(driver, table, only_ray=True)
        time.sleep(POLL_SECONDS)
    end(known)


_WATCHED: dict[int, subprocess.Popen] = {}


def start_for(driver: int) -> None:
    """One watcher of `driver` (Linux only: it reads /proc), however many clusters it starts."""
    if driver in _WATCHED or not Path("/proc/self/stat").is_file():
        return
    _WATCHED[driver] = subprocess.Popen([sys.executable, "-m", "cluster.reaper", str(driver)], start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    watch(int(sys.argv[1]))
