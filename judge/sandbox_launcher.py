"""Started by judge/sandbox.py as `python -I sandbox_launcher.py` in the program's working
directory, whose parent holds `job.json` (the limits, the mode, the stdin of each stdin/stdout
case: nothing the program may not see), `secret.json` (the nonce, the setup and the tests, the
expected outputs) and `verdict` (where the verdict goes). judge/sandbox.py's docstring says
what is enforced where.

This process walls itself in (`isolate`), then splits in two. The program runs in a child
forked *before* the secrets are read, so no memory it can reach holds a test, an expected value
or the nonce, and the child has no descriptor for them or for the verdict. This process, the
harness, then reads the secrets, judges, and writes the verdict with the nonce:

- asserts: the child runs the program, then answers the harness's requests over a pipe (the
  value of a name, a call, an attribute) with plain data only: exact None, bool, int, float,
  str, bytes, list, tuple, dict, set, frozenset, nothing else, no subclass. Anything else stays
  in the child as a numbered handle, and comparing, testing, hashing or iterating a handle in
  the harness is refused ("result not plain data: <type>"). The tests run here, so their
  asserts compare plain values with plain values where no program code runs.
- stdio: each case runs in a child of its own, its stdin the case's input, its stdout kept in
  a file nobody else can open; the expected outputs are read only after every case has run.

Exit status means nothing: only the verdict written here counts, so neither `sys.exit(0)` nor
a printed success marker nor a forged file passes. It imports nothing from the project: it runs
in a bare interpreter inside the sandbox.
"""
import builtins
import ctypes
import gc
import json
import os
import pathlib
import resource
import select
import signal
import sys
import time

HERE = os.path.realpath(__file__)
DEVICES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")
SYSTEM = ("/usr", "/etc/ld.so.cache")  # the shared libraries behind the interpreter's C modules
TOP_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # merged-/usr symlinks, copied as links
UNAVAILABLE = 97  # exit status: this machine cannot contain the program (judge/sandbox.py raises on it)
MAX_MESSAGE = 64 * 2**20
BUILTIN_NAMES = frozenset(vars(builtins))
PLAIN_ERRORS = {name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, Exception)}

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
MS_KEPT = 1 | 2 | 4 | 8 | 1024 | 2048 | 4096  # statvfs's ST_* bits equal these MS_* bits; a user namespace may not clear them
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
LIBC = ctypes.CDLL(None, use_errno=True)

REFUSED = frozenset({
    "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "subprocess.Popen", "pty.spawn",
    "os.kill", "os.killpg", "signal.pthread_kill", "socket.__new__", "socket.connect", "socket.bind", "socket.sendto",
    "socket.getaddrinfo", "resource.setrlimit", "resource.prlimit", "sys._current_frames", "sys.setprofile",
    "sys.settrace", "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys.addaudithook",
})
ON_PATHS = frozenset({
    "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link", "os.symlink", "os.truncate",
    "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile", "shutil.copytree", "os.chdir", "os.chroot",
    "sqlite3.connect",
})
FRAME_NAMES = frozenset({"tb_frame", "f_back", "f_globals", "f_locals", "f_builtins", "gi_frame", "cr_frame", "ag_frame"})
BLOCKED_MODULES = frozenset({"_posixsubprocess", "_ctypes", "_xxsubinterpreters", "_dbm", "_gdbm"})


class Unavailable(Exception):
    """This machine cannot contain the program as judge/sandbox.py promises."""


class NotPlain(Exception):
    """A value holds something other than exact built-in plain data (the type's name)."""


class Missing(Exception):
    """The program has no global of that name."""


class NotPlainData(BaseException):
    """The tests compared, tested or hashed one of the program's objects. A BaseException, so a
    test's `except Exception` does not swallow it (and the channel remembers it anyway)."""


class ProgramGone(BaseException):
    """The program exited, or broke the channel, before all tests ran."""


# --- system calls -------------------------------------------------------------------------


def libc(name: str, *args) -> None:
    """Call a libc function that returns 0 or sets errno; OSError naming it when it fails."""
    if getattr(LIBC, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def prctl(option: int, value: int) -> None:
    libc("prctl", option, ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda text: None if text is None else os.fsencode(text)  # noqa: E731
    libc("mount", encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data))


def drop_capabilities() -> None:
    """Clear every capability (those a user namespace granted); harmless where there are none."""
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    libc("capset", ctypes.byref(Header(0x20080522, 0)), (ctypes.c_uint32 * 6)())


# --- walls -------------------------------------------------------------------------------


def interpreter_files() -> tuple[str, ...]:
    """What the program may read besides its directory: the interpreter's prefixes and its
    import path (the standard library, its C modules, site-packages), as real paths."""
    paths = {sys.prefix, sys.base_prefix, *(p for p in sys.path if os.path.isabs(p))}
    return tuple(sorted({os.path.realpath(p) for p in paths if os.path.exists(p)}))


def isolate(work: str, jail: str, reads: tuple[str, ...]) -> str:
    """Wall the program in as far as the kernel allows, and never leave it root. Returns what held:
    "jail" (mount and network namespaces: only `reads`, /usr, a few devices and `work` exist),
    "nobody" (root without namespaces: the kernel's permissions as nobody), or "hook" (an ordinary
    user without user namespaces: the audit hook alone guards files)."""
    root = os.geteuid() == 0
    nobody = _nobody() if root else None
    if _unshare(root):
        _build_jail(work, jail, reads)
        _give_up(nobody)
        return "jail"
    if root and not _readable_by_all(os.path.dirname(os.__file__)):
        raise Unavailable(
            "running as root without mount namespaces (no CAP_SYS_ADMIN), and nobody cannot read the Python "
            f"installation under {sys.base_prefix}: run as an ordinary user, allow unshare(CLONE_NEWNS), or use a "
            "Python that everyone can read"
        )
    _give_up(nobody)
    return "nobody" if root else "hook"


def _nobody() -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534


def _unshare(root: bool) -> bool:
    """Private mount and network namespaces: as root directly, as a user inside a user namespace
    that maps only the user's own ids. False where the kernel refuses."""
    uid, gid = os.getuid(), os.getgid()
    try:
        libc("unshare", CLONE_NEWNS | CLONE_NEWNET | (0 if root else CLONE_NEWUSER))
    except OSError:
        return False
    if not root:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    return True


def _build_jail(work: str, jail: str, reads: tuple[str, ...]) -> None:
    """A new root (a tmpfs) holding read-only binds of /usr and the interpreter's files, the
    devices and the working directory, and nothing else: /etc/shadow, the homes, ~/.ray and the
    run directory are not there at all. Then chroot into it."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", jail, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    for link in TOP_LINKS:
        if os.path.islink(link):
            os.symlink(os.readlink(link), jail + link)
    for path in _outermost(SYSTEM + reads):
        _bind(path, jail + path, MS_RDONLY | MS_NODEV)
    for path in DEVICES:
        if os.path.exists(path):
            _bind(path, jail + path, 0)
    _bind(work, jail + work, MS_NODEV)
    mount(None, jail, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chroot(jail)
    os.chdir(work)


def _outermost(paths: tuple[str, ...]) -> list[str]:
    """The existing paths not inside another of them (a bind carries what is below it)."""
    kept: list[str] = []
    for path in sorted(p for p in set(paths) if os.path.exists(p)):
        if not any(path == top or path.startswith(top + "/") for top in kept):
            kept.append(path)
    return kept


def _bind(source: str, target: str, flags: int) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    mount(source, target, None, MS_BIND | MS_REC)
    kept = os.statvfs(source).f_flag & MS_KEPT
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_NOSUID | flags | kept)


def _readable_by_all(directory: str) -> bool:
    """Whether `nobody` could still import the standard library (it may live under /root)."""
    path = os.path.realpath(directory)
    if not os.stat(path).st_mode & 0o005 == 0o005:
        return False
    while path != os.path.dirname(path):
        path = os.path.dirname(path)
        if not os.stat(path).st_mode & 0o001:
            return False
    return True


def _give_up(nobody: tuple[int, int] | None) -> None:
    """Leave root for good (setuid from root clears every capability), or, as a user, drop what a
    user namespace granted; then no exec can gain privileges back (setuid files, file caps)."""
    if nobody is not None:
        try:
            os.setgroups([])
            os.setgid(nobody[1])
            os.setuid(nobody[0])
        except OSError as err:
            raise Unavailable(f"cannot become nobody ({err}); the program must not run as root") from None
    else:
        drop_capabilities()
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def common_limits(limits: dict) -> None:
    """Limits for the harness and every program process: memory, open files, no core dumps."""
    cap = lambda kind, value: resource.setrlimit(kind, (value, value))  # noqa: E731
    cap(resource.RLIMIT_AS, int(limits["memory_bytes"]))
    cap(resource.RLIMIT_NOFILE, 64)
    cap(resource.RLIMIT_CORE, 0)
    cpu = int(limits["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU at the soft limit, SIGKILL a second later


def become_program(limits: dict, keep: tuple[int, ...], work: str, reads: tuple[str, ...], report: int) -> None:
    """In a fresh child, before any program code: only the descriptors in `keep`, death with the
    harness, its own CPU time, capped file size, the audit hook (which reports its first refusal on `report`)."""
    for fd in range(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0]):
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    cpu = int(limits["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limits["file_bytes"]),) * 2)
    if limits["as_nobody"]:  # RLIMIT_NPROC counts the whole user: only as nobody does it bound a fork bomb alone
        resource.setrlimit(resource.RLIMIT_NPROC, (int(limits["processes"]),) * 2)
    pin_builtins()
    sys.addaudithook(make_guard(work, reads + (HERE,), report))


def pin_builtins() -> None:
    """Bind the built-ins this module and json use into their own globals, so a program that
    patches `builtins.isinstance` or `builtins.type` breaks its own code, not the channel that
    reports why it lost."""
    import json.decoder
    import json.encoder

    pinned = {name: value for name, value in vars(builtins).items() if not name.startswith("_")}
    for module in (json, json.encoder, json.decoder, sys.modules[__name__]):
        for name, value in pinned.items():
            vars(module).setdefault(name, value)


# --- the audit hook ----------------------------------------------------------------------


def make_guard(root: str, reads: tuple[str, ...], report: int | None):
    """The audit hook (PEP 578). Everything it reads is bound here, in its closure, so the
    program cannot change it through a module's globals. It refuses starting processes, sockets,
    ctypes and frame walking; writing anywhere but `root`; reading anything but `root`, `reads`
    and the devices. The first refusal is also written to `report`, so a program that catches
    the PermissionError still loses."""
    realpath, fsdecode, isdir, lstat, write, exit_now = os.path.realpath, os.fsdecode, os.path.isdir, os.lstat, os.write, os._exit
    refused, on_paths, frame_names, blocked_modules = REFUSED, ON_PATHS, FRAME_NAMES, BLOCKED_MODULES
    path_types, devices, kind = (str, bytes, pathlib.PurePosixPath, pathlib.PosixPath), frozenset(DEVICES), type
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    reported: list[str] = []

    def no(reason: str) -> None:
        if report is not None and not reported:
            reported.append(reason)
            try:
                write(report, reason.encode("utf-8", "replace")[:1000] + b"\n")
            except OSError:
                exit_now(125)  # the program closed the report channel: it loses by dying
        raise PermissionError(f"sandbox: {reason}")

    def name_of(path) -> str:
        if kind(path) not in path_types:
            no(f"blocked: a path of type {kind(path).__name__}")  # its __fspath__ could answer differently twice
        return fsdecode(path)

    def within(name: str, tops: tuple[str, ...]) -> bool:
        full = realpath(name)
        return any(full == top or full.startswith(top + "/") for top in tops)

    def on_open(path, mode, flags) -> None:
        if path is None or kind(path) is int:
            return  # a descriptor it already holds
        name = name_of(path)
        if realpath(name) in devices:
            return
        inside = within(name, (root,))
        if not inside and (any(c in str(mode) for c in "wax+") or flags & write_flags):
            no(f"blocked: writing {name}")
        if not inside and not within(name, reads):
            no(f"read outside the sandbox refused: {name}")
        if not inside and isdir(name):
            no(f"blocked: opening directory {name}")  # no handle for dir_fd= tricks outside
        if inside and _is_device(lstat, name):
            no(f"blocked: opening device {name}")

    def on_list(path) -> None:
        if path is not None and kind(path) is not int and not within(name := name_of(path), (root,) + reads):
            no(f"read outside the sandbox refused: {name}")

    def on_path_event(event: str, args: tuple) -> None:
        if args and kind(args[0]) is int:
            no(f"blocked: {event} on descriptor {args[0]}")  # an fd could point anywhere
        for path in args[:2]:  # (other ints are modes or dir_fds; directories outside cannot be opened)
            if path is not None and kind(path) is not int and not within(name_of(path), (root,)):
                no(f"blocked: {event} on {fsdecode(path)}")

    def guard(event: str, args: tuple) -> None:
        if event in refused or event.startswith("ctypes."):
            no(f"blocked: {event}")
        elif event == "open" and len(args) >= 3:
            on_open(args[0], args[1] or "", args[2] or 0)
        elif event in ("os.listdir", "os.scandir") and args:
            on_list(args[0])
        elif event in on_paths:
            on_path_event(event, args)
        elif event == "import" and args and args[0] in blocked_modules:
            no(f"blocked: import {args[0]}")
        elif event.startswith("object.__") and len(args) > 1 and args[1] in frame_names:
            no(f"blocked: {event} {args[1]}")

    return guard


def _is_device(lstat, name: str) -> bool:
    import stat

    try:
        mode = lstat(name).st_mode
    except OSError:
        return False
    return stat.S_ISBLK(mode) or stat.S_ISCHR(mode)


# --- plain data on the wire --------------------------------------------------------------


def to_wire(value, other, kind=type):
    """`value` as JSON, keeping exact built-in types only (tuples, sets, dicts with any keys and
    bytes tagged); `other(value)` for anything else. `kind` is bound here, not looked up."""
    t = kind(value)
    if value is None or t is bool or t is int or t is float or t is str:
        return value
    if t is list:
        return [to_wire(v, other) for v in value]
    if t is tuple or t is set or t is frozenset:
        return {"t": t.__name__, "v": [to_wire(v, other) for v in value]}
    if t is dict:
        return {"t": "dict", "v": [[to_wire(k, other), to_wire(v, other)] for k, v in value.items()]}
    if t is bytes:
        return {"t": "bytes", "v": value.hex()}
    return other(value)


def from_wire(data, handle):
    """The inverse of `to_wire` on what json.loads gave; `handle(tag)` for a reference."""
    if type(data) is list:
        return [from_wire(v, handle) for v in data]
    if type(data) is not dict:
        return data
    tag, items = data["t"], data.get("v")
    if tag == "ref":
        return handle(data)
    if tag == "bytes":
        return bytes.fromhex(items)
    values = [from_wire(v, handle) for v in items] if tag != "dict" else [(from_wire(k, handle), from_wire(v, handle)) for k, v in items]
    return {"tuple": tuple, "set": set, "frozenset": frozenset, "dict": dict}[tag](values)


def send(fd: int, message: dict) -> None:
    data = json.dumps(message).encode()
    view = memoryview(len(data).to_bytes(8, "big") + data)
    while view:
        view = view[os.write(fd, view):]


def receive(fd: int) -> dict | None:
    """The next message, or None at end of file. ValueError when it is not one."""
    head = _read_exact(fd, 8)
    if head is None:
        return None
    size = int.from_bytes(head, "big")
    if size > MAX_MESSAGE:
        raise ValueError(f"a message of {size} bytes")
    body = _read_exact(fd, size)
    message = json.loads(body) if body is not None else None
    if type(message) is not dict:
        raise ValueError("not a message")
    return message


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 2**20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# --- the program's side (asserts) ----------------------------------------------------------


class Handles:
    """The program's objects the harness holds by number: its functions and classes, and any
    value that is not plain data (kept here, described there by its type's name)."""

    def __init__(self) -> None:
        self.objects: list = []
        self.numbers: dict[int, int] = {}

    def out(self, value):
        try:
            return to_wire(value, _refuse_other)
        except NotPlain as inner:
            outer = type(value).__name__
            return self.ref(value, outer if str(inner) == outer else f"{outer} containing {inner}")
        except RecursionError:
            return self.ref(value, f"{type(value).__name__} nested too deeply")

    def ref(self, value, kind: str) -> dict:
        number = self.numbers.setdefault(id(value), len(self.objects))
        if number == len(self.objects):
            self.objects.append(value)  # kept alive, so its id stays its own
        return {"t": "ref", "id": number, "type": kind[:200]}

    def get(self, tag: dict):
        return self.objects[int(tag["id"])]

    def at(self, number: int):
        return self.objects[int(number)]


def _refuse_other(value):
    raise NotPlain(type(value).__name__)


def program_side(source: str, requests: int, replies: int) -> None:
    """Run the program, say whether it ran to the end, then answer the harness until it is done."""
    namespace = {"__name__": "__main__", "__file__": "solution.py", "__builtins__": builtins}
    try:
        exec(compile(source, "solution.py", "exec"), namespace)
    except BaseException as err:
        _show(err)
        send(replies, describe(err))
        finish(1)
    send(replies, {"ready": True})
    handles = Handles()
    while (request := receive(requests)) is not None and request.get("op") != "done":
        try:
            reply = answer(request, namespace, handles)
        except Missing:
            reply = {"missing": True}
        except BaseException as err:
            reply = describe(err)
        try:
            send(replies, reply)
        except (TypeError, ValueError, RecursionError, MemoryError) as err:
            send(replies, describe(err))
    finish(0)


def answer(request: dict, namespace: dict, handles: Handles) -> dict:
    """One request: a global's value, an attribute, or a call (whose list, dict and set arguments
    come back too, so the tests see what the program did to them)."""
    if request["op"] == "get":
        if request["name"] not in namespace:
            raise Missing(request["name"])
        return {"value": handles.out(namespace[request["name"]])}
    target = handles.at(request["ref"])
    if request["op"] == "getattr":
        return {"value": handles.out(getattr(target, request["name"]))}
    args, kwargs = from_wire(request["args"], handles.get), from_wire(request["kwargs"], handles.get)
    result = target(*args, **kwargs)
    after = [handles.out(a) if type(a) in (list, dict, set) else None for a in args]
    return {"value": handles.out(result), "args": after}


def describe(err: BaseException) -> dict:
    """An exception as data: its name, its nearest built-in class (so `except ValueError` in the
    tests still catches the program's own subclass of it) and its message."""
    try:
        message = str(err)
    except BaseException:
        message = ""
    builtin = next((k.__name__ for k in type(err).__mro__ if k.__module__ == "builtins"), "BaseException")
    return {"error": type(err).__name__, "builtin": builtin, "message": message[:2000]}


def _show(err: BaseException, skip: int = 1) -> None:
    """A traceback on stderr without the launcher's own first `skip` frames (as the interpreter
    prints an uncaught error: no frame objects are touched, which the audit hook refuses)."""
    tb = err.__traceback__
    for _ in range(skip):
        tb = tb.tb_next if tb is not None else None
    try:
        sys.__excepthook__(type(err), err.with_traceback(tb), tb)
    except BaseException:
        pass


# --- the harness's side (asserts) ----------------------------------------------------------


class Channel:
    """The harness's end of the pipes to the program. It remembers the first time the program
    left, broke the channel or had a value compared that is not plain data, so a test that
    catches the error still loses."""

    def __init__(self, requests: int, replies: int) -> None:
        self.requests, self.replies = requests, replies
        self.trouble: list[BaseException] = []

    def fail(self, err: BaseException) -> BaseException:
        self.trouble.append(err)
        return err

    def read(self) -> dict:
        try:
            reply = receive(self.replies)
        except (OSError, ValueError, RecursionError) as err:
            raise self.fail(ProgramGone(f"the program broke the judge's channel ({err})")) from None
        if reply is None:
            raise self.fail(ProgramGone("exited before all tests ran"))
        return reply

    def ask(self, request: dict) -> dict:
        try:
            send(self.requests, request)
        except OSError:
            raise self.fail(ProgramGone("exited before all tests ran")) from None
        return self.read()

    def value(self, reply: dict):
        if "error" in reply:
            raise self.rebuild(reply)
        try:
            return from_wire(reply["value"], self.handle)
        except (KeyError, TypeError, ValueError, RecursionError) as err:
            raise self.fail(ProgramGone(f"the program broke the judge's channel ({err!r})")) from None

    def rebuild(self, reply: dict) -> BaseException:
        """The program's exception as one of the harness's own: its built-in class, or ProgramGone
        for SystemExit and the like."""
        builtin, name, message = str(reply.get("builtin")), str(reply.get("error")), str(reply.get("message"))
        if builtin not in PLAIN_ERRORS:
            return self.fail(ProgramGone("exited before all tests ran"))
        try:
            return getattr(builtins, builtin)(message if builtin == name else f"{name}: {message}")
        except Exception:  # a class that wants more arguments (UnicodeDecodeError)
            return RuntimeError(f"{name}: {message}")

    def handle(self, tag: dict) -> "Remote":
        return Remote(self, int(tag["id"]), str(tag.get("type"))[:200])

    def wire(self, value):
        return to_wire(value, self.reference)

    def reference(self, value) -> dict:
        if type(value) is Remote and value.channel is self:
            return {"t": "ref", "id": value.number}
        raise TypeError(f"the tests pass a {type(value).__name__} to the program: only plain data and its own objects cross")

    def get(self, name: str):
        reply = self.ask({"op": "get", "name": name})
        if reply.get("missing"):
            raise NameError(f"name {name!r} is not defined")
        return self.value(reply)

    def attribute(self, number: int, name: str):
        return self.value(self.ask({"op": "getattr", "ref": number, "name": name}))

    def call(self, number: int, args: tuple, kwargs: dict):
        reply = self.ask({"op": "call", "ref": number, "args": self.wire(list(args)), "kwargs": self.wire(kwargs)})
        if "error" not in reply:
            self.update(args, reply.get("args") or [])
        return self.value(reply)

    def update(self, args: tuple, after: list) -> None:
        """Carry the program's changes to list, dict and set arguments back into the tests' own."""
        for arg, new in zip(args, after):
            new = None if new is None else self.value({"value": new})
            if type(arg) is list and type(new) is list:
                arg[:] = new
            elif new is not None and type(arg) in (dict, set) and type(new) is type(arg):
                arg.clear()
                arg.update(new)

    def refuse(self, kind: str) -> None:
        raise self.fail(NotPlainData(f"result not plain data: {kind}"))


class Remote:
    """One of the program's objects, held by number. It can be called and its attributes read
    (the answers come back as plain data or as more handles), but never compared, tested for
    truth, hashed, iterated or printed here: that is where a crafted __eq__ or __bool__ would
    run, so each of those is refused."""

    __slots__ = ("channel", "number", "kind")

    def __init__(self, channel: Channel, number: int, kind: str) -> None:
        self.channel, self.number, self.kind = channel, number, kind

    def __call__(self, *args, **kwargs):
        return self.channel.call(self.number, args, kwargs)

    def __getattr__(self, name: str):
        return self.channel.attribute(self.number, name)

    def __repr__(self) -> str:
        return f"<the program's {self.kind}>"

    @property  # type: ignore[misc]  # read-only on purpose: the handle's class is never the program's
    def __class__(self):  # isinstance(handle, int) asks for it: a handle is no int, and says so
        self.channel.refuse(self.kind)


def _refused(self: Remote, *args, **kwargs):
    self.channel.refuse(self.kind)


for _name in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__hash__", "__len__", "__iter__",
              "__contains__", "__getitem__", "__index__", "__int__", "__float__", "__complex__", "__str__", "__format__",
              "__abs__", "__neg__", "__pos__", "__round__", "__add__", "__radd__", "__sub__", "__rsub__", "__mul__",
              "__rmul__", "__truediv__", "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__"):
    setattr(Remote, _name, _refused)


class Names(dict):
    """The tests' globals: their own names, the setup's, the built-ins, then (looked up afresh
    each time) the program's. A program's `len` or `check` never replaces the tests' own."""

    def __init__(self, channel: Channel) -> None:
        super().__init__(__name__="__main__", __builtins__=builtins)
        self.channel = channel

    def __missing__(self, name: str):
        if name in BUILTIN_NAMES:
            raise KeyError(name)  # the interpreter goes on to the built-ins
        return self.channel.get(name)


def harness(channel: Channel, setup: str, slots: list[str], tests: str) -> str | None:
    """Wait for the program to run to its end, then run the setup (trusted, from the data set;
    its `slots`, the stubs the answer fills, are left to the program) and the tests here. None
    when every test ran to the end, else why not."""
    ready = channel.read()
    if "error" in ready:  # the program failed before its end (it printed its own traceback)
        err = channel.rebuild(ready)
        return str(err) if isinstance(err, ProgramGone) else reason_of(str(ready["error"]), str(ready.get("message")))
    names = Names(channel)
    try:
        code = compile(setup, "setup.py", "exec")
    except SyntaxError:
        code = None  # a fragment the answer completes: its names come from the program
    if code is not None:
        exec(code, names)
        for name in slots:
            names.pop(name, None)
    exec(compile(tests, "tests.py", "exec"), names)
    return None


def run_asserts(program: str, secret_fd: int, limits: dict, work: str, reads: tuple[str, ...]) -> tuple[dict, str]:
    """Fork the program, then (only then) read the secrets and run the tests against it."""
    requests_r, requests_w = os.pipe()
    replies_r, replies_w = os.pipe()
    report_r, report_w = os.pipe()
    gc.freeze()  # the child's garbage collector leaves the parent's objects (and their pages) alone
    pid = os.fork()
    if pid == 0:
        become_program(limits, (requests_r, replies_w, report_w), work, reads, report_w)
        program_side(program, requests_r, replies_w)
    for fd in (requests_r, replies_w, report_w):
        os.close(fd)
    secret = read_secret(secret_fd)
    channel = Channel(requests_w, replies_r)
    sys.addaudithook(make_guard(work, reads + (HERE,), None))
    failure = _run_harness(channel, secret["setup"], secret["slots"], secret["tests"])
    try:
        send(requests_w, {"op": "done"})
    except OSError:
        pass
    status = wait_for(pid, 1.0, kill=False)  # its output flushed; what lingers dies with this process
    return _assert_verdict(channel, failure, status, first_report(report_r)), secret["nonce"]


def _run_harness(channel: Channel, setup: str, slots: list[str], tests: str) -> str | None:
    try:
        return harness(channel, setup, slots, tests)
    except ProgramGone as err:
        return str(err)
    except BaseException as err:
        _show(err, skip=2)  # from the tests' own frame
        return str(err) if isinstance(err, NotPlainData) else reason_of(type(err).__name__, str(err))


def _assert_verdict(channel: Channel, failure: str | None, status: int | None, refusal: str | None) -> dict:
    """The first refusal, else a death by signal (judge/sandbox.py names it from the status),
    else the first trick or exit the channel saw, else the failing test."""
    gone = any(isinstance(t, ProgramGone) for t in channel.trouble)
    if refusal:
        reason = refusal
    elif gone and status is not None and status < 0:
        reason = None
    elif channel.trouble:
        reason = str(channel.trouble[0])
    else:
        reason = failure
    return {"passed": reason is None and not gone, "reason": reason, "status": status}


def reason_of(name: str, message: str) -> str:
    """An exception in a few words: `blocked: os.fork`, `memory limit`, `AssertionError: ...`."""
    line = f"{name}: {message}" if message else name
    if line.startswith("PermissionError: sandbox: "):
        return line.removeprefix("PermissionError: sandbox: ")
    if name == "MemoryError":
        return "memory limit"
    if "File too large" in line:  # Python ignores SIGXFSZ, so RLIMIT_FSIZE shows as EFBIG
        return "file size limit"
    return line[:200]


# --- stdin/stdout cases ------------------------------------------------------------------


def run_cases(program: str, inputs: list[str], secret_fd: int, limits: dict, work: str, reads: tuple[str, ...]) -> tuple[dict, str]:
    """Run every case (stopping at the first crash, timeout or refusal), and only then read the
    expected outputs and compare."""
    report_r, report_w = os.pipe()
    os.set_blocking(report_r, False)
    outputs: list[bytes] = []
    for number, text in enumerate(inputs, start=1):
        status, output = run_case(program, text, limits, work, reads, report_w)
        outputs.append(output)
        problem = _case_problem(status, first_report(report_r), limits)
        if problem is not None:
            os.write(1, output[: 16 * 2**10])
            return {**problem, "case": number}, read_secret(secret_fd)["nonce"]
    secret = read_secret(secret_fd)
    for number, (got, want) in enumerate(zip(outputs, secret["outputs"]), start=1):
        if normalise(got.decode("utf-8", "replace")) != normalise(want):
            os.write(1, got[: 16 * 2**10])
            return {"passed": False, "reason": f"wrong answer on case {number}", "status": 0, "case": number}, secret["nonce"]
    return {"passed": True, "reason": None, "status": 0}, secret["nonce"]


def normalise(text: str) -> str:
    """Trailing whitespace off every line, and trailing blank lines dropped (as judges do)."""
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def _case_problem(status: int | None, refusal: str | None, limits: dict) -> dict | None:
    if refusal:
        return {"passed": False, "reason": refusal, "status": status}
    if status is None:
        return {"passed": False, "reason": f"timeout after {limits['wall_seconds']:g}s", "status": None}
    if status != 0:
        return {"passed": False, "reason": None, "status": status}  # judge/sandbox.py reads why from stderr
    return None


def run_case(program: str, text: str, limits: dict, work: str, reads: tuple[str, ...], report: int) -> tuple[int | None, bytes]:
    """One run of the program with `text` on stdin: its exit status (None: it ran past the wall
    clock and was killed) and its stdout, both through unlinked files no other process can open."""
    stdin, stdout = scratch(work, text.encode()), scratch(work, b"")
    gc.freeze()
    pid = os.fork()
    if pid == 0:
        os.dup2(stdin, 0)
        os.dup2(stdout, 1)
        become_program(limits, (report,), work, reads, report)
        run_script(program)
    os.close(stdin)
    status = wait_for(pid, float(limits["wall_seconds"]))
    output = os.pread(stdout, int(limits["file_bytes"]) + 1, 0)
    os.close(stdout)
    return status, output


def scratch(work: str, data: bytes) -> int:
    """A file in the working directory that has no name (unlinked at once), holding `data`."""
    path = os.path.join(work, f".case-{os.urandom(8).hex()}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    os.unlink(path)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def run_script(source: str) -> None:
    """Run a stdin/stdout program to its end: exit status 0 (also through sys.exit(0)), or the
    status it asked for, or 1 with its traceback on stderr."""
    namespace = {"__name__": "__main__", "__file__": "solution.py", "__builtins__": builtins}
    try:
        exec(compile(source, "solution.py", "exec"), namespace)
    except SystemExit as stop:
        code = stop.code
        if code is not None and type(code) is not int:
            print(code, file=sys.stderr)
        finish(0 if code is None else code if type(code) is int else 1)
    except BaseException as err:
        _show(err)
        finish(1)
    finish(0)


# --- plumbing ----------------------------------------------------------------------------


def wait_for(pid: int, seconds: float, kill: bool = True) -> int | None:
    """The child's exit status (negative: the signal that ended it), or None when it was still
    running after `seconds` (then killed, when `kill`)."""
    deadline = time.monotonic() + seconds
    try:
        watch = os.pidfd_open(pid)
    except (AttributeError, OSError):
        watch = None
    try:
        while not (done := os.waitpid(pid, os.WNOHANG))[0]:
            left = deadline - time.monotonic()
            if left <= 0:
                if kill:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                return None
            select.select([watch], [], [], left) if watch is not None else time.sleep(min(left, 0.01))
        return os.waitstatus_to_exitcode(done[1])
    finally:
        if watch is not None:
            os.close(watch)


def first_report(fd: int) -> str | None:
    """The first refusal a program process reported, if any (the descriptor does not block)."""
    os.set_blocking(fd, False)
    try:
        data = os.read(fd, 4096)
    except BlockingIOError:
        return None
    return data.decode("utf-8", "replace").split("\n")[0] or None


def read_secret(fd: int) -> dict:
    chunks = []
    while chunk := os.read(fd, 2**20):
        chunks.append(chunk)
    os.close(fd)
    return json.loads(b"".join(chunks))


def finish(status: int) -> None:
    """Exit now (no atexit handler of the program's runs), its output flushed first."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def main() -> None:
    work = os.path.realpath(os.getcwd())
    base = os.path.dirname(work)
    with open(os.path.join(base, "job.json")) as f:
        job = json.load(f)
    with open(os.path.join(work, "solution.py")) as f:
        program = f.read()
    secret = os.open(os.path.join(base, "secret.json"), os.O_RDONLY)
    verdict = os.open(os.path.join(base, "verdict"), os.O_WRONLY)
    limits, reads = {**job["limits"], "as_nobody": os.geteuid() == 0}, interpreter_files()
    common_limits(limits)
    try:
        isolate(work, os.path.join(base, "jail"), reads)
    except (Unavailable, OSError) as err:
        print(f"sandbox unavailable: {err}", file=sys.stderr)
        finish(UNAVAILABLE)
    sys.set_int_max_str_digits(0)  # a huge int crosses the channel as JSON digits
    prctl(PR_SET_DUMPABLE, 0)  # the program (same user) can neither ptrace this process nor read its memory
    os.environ["TMPDIR"] = work
    sys.argv[:] = ["solution.py"]
    sys.dont_write_bytecode = True
    if job["mode"] == "stdio":
        result, nonce = run_cases(program, job["inputs"], secret, limits, work, reads)
    else:
        result, nonce = run_asserts(program, secret, limits, work, reads)
    os.write(verdict, json.dumps({**result, "nonce": nonce}).encode())
    finish(0)


if __name__ == "__main__":
    main()
