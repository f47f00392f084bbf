"""Started by judge/sandbox.py as `python -I sandbox_launcher.py LIMITS` with a nonce on stdin:
locks this process down (limits, network, user, audit hook), runs solution.py then tests.py
from the working directory, and only if both ran to the end writes the nonce to `.passed`.
Exit status means nothing: a program that calls `sys.exit(0)` or `os._exit(0)` before its
tests run has not passed.

It imports nothing from the project: it runs in a bare interpreter inside the sandbox.
"""
import ctypes
import json
import os
import resource
import sys

CLONE_NEWNET = 0x40000000


def lock_down(limits: dict) -> None:
    cap = lambda kind, value: resource.setrlimit(kind, (value, value))  # noqa: E731
    cpu = int(limits["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU at the soft limit, SIGKILL a second later
    cap(resource.RLIMIT_AS, int(limits["memory_bytes"]))
    cap(resource.RLIMIT_FSIZE, int(limits["file_bytes"]))
    cap(resource.RLIMIT_NOFILE, 64)
    cap(resource.RLIMIT_CORE, 0)
    if os.geteuid() == 0:
        ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET)  # an empty network namespace, where allowed
    if os.geteuid() == 0 and readable_by_all(os.path.dirname(os.__file__)):
        import pwd

        nobody = pwd.getpwnam("nobody")
        cap(resource.RLIMIT_NPROC, int(limits["processes"]))
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)


def readable_by_all(directory: str) -> bool:
    """Whether `nobody` could still import the standard library (it may live under /root)."""
    path = os.path.realpath(directory)
    if not os.stat(path).st_mode & 0o005 == 0o005:
        return False
    while path != os.path.dirname(path):
        path = os.path.dirname(path)
        if not os.stat(path).st_mode & 0o001:
            return False
    return True


def make_guard(root: str):
    """The audit hook. Everything it reads is bound here, in its closure, so the program cannot
    change it through a module's globals, and the usual ways to reach a closure (gc, a
    function's __code__/__closure__, a traceback's frame) are refused. `sys._getframe` stays
    allowed (enum, namedtuple and logging need it), so a program that walks its own stack
    frames on purpose can still reach the launcher's locals: a Python-level guard has limits."""
    import stat

    realpath, fsdecode, lstat, isdir = os.path.realpath, os.fsdecode, os.stat, os.path.isdir
    s_isdev = lambda mode: stat.S_ISBLK(mode) or stat.S_ISCHR(mode)  # noqa: E731
    path_types = (str, bytes, os.PathLike)
    refused = frozenset({
        "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "subprocess.Popen",
        "pty.spawn", "os.kill", "os.killpg", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.call_function",
        "socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo",
        "resource.setrlimit", "resource.prlimit", "sys._current_frames", "sys.setprofile", "sys.settrace",
        "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys.addaudithook",
    })
    on_paths = frozenset({
        "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link", "os.symlink",
        "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile", "os.chdir", "os.chroot",
    })
    frame_names = frozenset({"tb_frame", "f_back", "f_globals", "f_locals", "f_builtins", "gi_frame", "cr_frame", "ag_frame",
                             "__code__", "__closure__", "__defaults__", "__kwdefaults__", "__globals__"})
    blocked_modules = frozenset({"_posixsubprocess", "_ctypes", "_xxsubinterpreters"})
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def inside(path) -> bool:
        if not isinstance(path, path_types):
            return False  # a descriptor could point anywhere
        full = realpath(fsdecode(path))
        return full == root or full.startswith(root + "/")

    def no(what: str) -> None:
        raise PermissionError(f"sandbox: {what} is not allowed")

    def guard(event: str, args: tuple) -> None:
        if event in refused:
            no(event)
        if event == "import" and args and args[0] in blocked_modules:
            no(f"import {args[0]}")
        if event in ("object.__getattr__", "object.__setattr__", "object.__delattr__") and len(args) > 1 and args[1] in frame_names:
            no(f"{event} {args[1]}")
        if event == "open" and len(args) >= 3:
            path, mode, flags = args[0], args[1] or "", args[2] or 0
            if path is None or isinstance(path, int):
                return
            if fsdecode(path).startswith("/proc/"):
                no(f"opening {fsdecode(path)}")  # /proc/self/mem and friends would reveal this process
            writes = any(c in str(mode) for c in "wax+") or flags & write_flags
            if writes and not inside(path):
                no(f"writing {fsdecode(path)}")
            if not inside(path) and isdir(path):
                no(f"opening directory {fsdecode(path)}")  # no handle for dir_fd= tricks outside
            try:
                device = s_isdev(lstat(path).st_mode)
            except OSError:
                device = False
            if device and inside(path):
                no(f"opening device {fsdecode(path)}")
        elif event in on_paths:
            if args and isinstance(args[0], int):
                no(f"{event} on descriptor {args[0]}")  # an fd could point anywhere
            for path in args[:2]:  # (other ints are modes or dir_fds; directories outside cannot be opened)
                if isinstance(path, path_types) and not inside(path):
                    no(f"{event} on {fsdecode(path)}")

    return guard


def main() -> None:
    root = os.path.realpath(os.getcwd())
    nonce = sys.stdin.readline().strip()
    sources = [(name, open(os.path.join(root, name)).read()) for name in ("solution.py", "tests.py")]
    passed = os.open(os.path.join(root, ".passed"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    lock_down(json.loads(sys.argv[1]))
    del sys.argv[1:]
    sys.dont_write_bytecode = True
    os.environ["TMPDIR"] = root
    sys.addaudithook(make_guard(root))
    namespace = {"__name__": "__main__", "__file__": "solution.py"}
    try:
        for name, source in sources:
            exec(compile(source, name, "exec"), namespace)
    except SystemExit as stop:
        print(f"SystemExit: the program exited ({stop.code!r}) before its tests finished", file=sys.stderr)
        finish(3)
    os.write(passed, nonce.encode())
    finish(0)


def finish(status: int) -> None:
    """Exit now (no atexit handler of the program's runs), its output flushed first."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


if __name__ == "__main__":
    main()
