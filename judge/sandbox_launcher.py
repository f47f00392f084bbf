"""Started by judge/sandbox.py as `python -I sandbox_launcher.py LIMITS`: locks this process
down (limits, network, user, audit hook), then runs program.py from the working directory.

It imports nothing from the project: it runs in a bare interpreter inside the sandbox.
"""
import ctypes
import json
import os
import resource
import sys

CLONE_NEWNET = 0x40000000
EXEC_EVENTS = {
    "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "subprocess.Popen",
    "pty.spawn", "os.kill", "os.killpg", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.call_function",
    "socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo",
}
PATH_EVENTS = {
    "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link", "os.symlink",
    "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile",
}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


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


def inside(path: object, root: str) -> bool:
    if isinstance(path, int):
        return True  # an already open descriptor
    full = os.path.realpath(os.fsdecode(path))
    return full == root or full.startswith(root + os.sep)


def install_guard(root: str) -> None:
    def guard(event: str, args: tuple) -> None:
        if event in EXEC_EVENTS:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open" and len(args) >= 3:
            path, mode, flags = args[0], args[1] or "", args[2] or 0
            writes = any(c in str(mode) for c in "wax+") or flags & WRITE_FLAGS
            if path is not None and writes and not inside(path, root):
                raise PermissionError(f"sandbox: writing {path} is not allowed")
        elif event in PATH_EVENTS:
            for path in args[:2]:
                if isinstance(path, (str, bytes, os.PathLike)) and not inside(path, root):
                    raise PermissionError(f"sandbox: {event} on {os.fsdecode(path)} is not allowed")

    sys.addaudithook(guard)


def main() -> None:
    root = os.path.realpath(os.getcwd())
    source = open(os.path.join(root, "program.py")).read()
    lock_down(json.loads(sys.argv[1]))
    del sys.argv[1:]
    sys.dont_write_bytecode = True
    install_guard(root)
    code = compile(source, "program.py", "exec")
    exec(code, {"__name__": "__main__", "__file__": "program.py"})


if __name__ == "__main__":
    main()
