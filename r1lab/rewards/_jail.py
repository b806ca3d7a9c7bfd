"""The sandbox's fork server: a standalone script, standard library only.

`sandbox.Sandbox` starts it once as `python -I -S _jail.py --serve <control-fd> <warm>` with only
TMPDIR in its environment, so it imports nothing from r1lab, site-packages or the working directory, and
must stay that way: nothing here may import `r1lab`. It keeps `warm` supervisors forked ahead of
time, each already in fresh namespaces with its read-only tree built; one takes a request (a
marshalled dict plus the run's channel, source, stdin, stdout and stderr fds), forks the program
and reports its isolation layers and exit status on the channel. The isolation layers, and what
each does not protect against, are documented in `sandbox.py`.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import marshal
import os
import resource
import select
import secrets
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import threading
import traceback
import types
from typing import NoReturn, TextIO

SANDBOX_UIDS = range(1_500_000_000, 2_000_000_000)  # each run (as root) gets a random one
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_DEVICES = ("null", "zero", "random", "urandom")
(NEWNS, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET) = (
    0x20000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000)
(MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE) = (
    1, 2, 4, 32, 4096, 16384, 1 << 18)


def _serve(control_fd: int, warm: int) -> NoReturn:
    """Keep `warm` supervisors waiting on the request socket, replace each one that takes a
    request, reap them and delete their directories; stop when the caller says so on our stdin
    or closes it."""
    control = socket.socket(fileno=control_fd)
    took_r, took_w = os.pipe()
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ, "caller")
    sel.register(took_r, selectors.EVENT_READ, "took")
    children: dict[int, tuple[int, str]] = {}  # pid -> (pidfd, directory)
    busy: set[int] = set()  # supervisors that took a request (and were replaced then)
    os.set_blocking(took_r, False)

    def note_takers() -> None:  # each supervisor that took a request wrote its pid: replace it
        with contextlib.suppress(BlockingIOError):
            while news := os.read(took_r, 256):  # writes of 4 bytes are atomic: no pid is split
                for at in range(0, len(news), 4):
                    busy.add(int.from_bytes(news[at:at + 4], "little"))
                    spawn()

    def spawn() -> None:
        workdir, server = tempfile.mkdtemp(prefix="r1lab-"), os.getpid()
        pid = os.fork()
        if pid == 0:
            _supervise(control, took_w, workdir, server)
        children[pid] = (os.pidfd_open(pid), workdir)
        sel.register(children[pid][0], selectors.EVENT_READ, pid)

    for _ in range(warm):
        spawn()
    while True:
        for key, _ in sel.select():
            # "stop" from `Sandbox.close`, or end-of-file when the caller died. Not EOF alone:
            # processes the caller forked later (a worker pool) hold copies of our stdin's write end
            if key.data == "caller" and os.read(0, 64) in (b"", b"stop"):
                for pid, (_, workdir) in children.items():
                    _kill_group(pid)
                    os.waitpid(pid, 0)
                    shutil.rmtree(workdir, ignore_errors=True)
                _remove_own_tmpdir()
                os._exit(0)
            elif key.data == "took":
                note_takers()
            elif isinstance(key.data, int):
                note_takers()  # it wrote before it exited: a taker is known by now
                pidfd, workdir = children.pop(key.data)
                killed = os.WIFSIGNALED(os.waitpid(key.data, 0)[1])
                sel.unregister(pidfd)
                os.close(pidfd)
                shutil.rmtree(workdir, ignore_errors=True)
                # a waiting one killed (OOM killer, a stray signal) was never replaced, and once all
                # were, every run was an error; one that left on its own saw the caller close
                if key.data not in busy and killed:
                    spawn()
                busy.discard(key.data)


def _remove_own_tmpdir() -> None:
    """The directory the caller made for this server (its TMPDIR), now empty: the caller may be
    gone (it died, or was a forked child that left with os._exit) and cannot remove it."""
    root = tempfile.gettempdir()
    if os.path.basename(root).startswith("r1lab-sandbox-"):
        with contextlib.suppress(OSError):  # rmdir: never anything but an empty directory
            os.rmdir(root)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _supervise(control: socket.socket, took_w: int, workdir: str, server: int) -> NoReturn:
    """One run's root-side supervisor, forked ahead of time by the `server` process: enter fresh
    namespaces and build the read-only tree, then take one request from the shared socket and
    see it through."""
    try:
        os.setsid()
        _libc().prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the server
        if os.getppid() != server:  # it died before the line above: no signal will come, and an
            os._exit(0)  # orphan would wait on the old socket (and could run a request) as root
        uid = secrets.choice(SANDBOX_UIDS) if os.geteuid() == 0 else None
        try:
            layers, cwd, failure = *_isolate(workdir, uid), ""
        except Exception:  # fail closed: the request this one takes gets the error
            layers, cwd, failure = [], workdir, traceback.format_exc()
        message, fds, _, _ = socket.recv_fds(control, 1 << 16, 8)
        if not message:  # the sandbox was closed
            os._exit(0)
        os.write(took_w, os.getpid().to_bytes(4, "little"))
        _run_request(marshal.loads(message), fds, layers, cwd, uid, failure, workdir)
    except BaseException:
        traceback.print_exc()  # the run's stderr, once it has one
    finally:
        os._exit(0)  # the caller learnt the outcome from the channel, or from its silence


def _run_request(request: dict, fds: list[int], layers: list[str], cwd: str, uid: int | None,
                 failure: str, workdir: str) -> None:
    """Wire the request's files to fds 0-3, fork the program, kill it on request, report its end."""
    chan, source_fd, stdin_fd, out_fd, err_fd = fds
    with open(source_fd, encoding="utf-8", errors="surrogatepass") as f:
        request["source"] = f.read()
    for fd, target in ((stdin_fd, 0), (out_fd, 1), (err_fd, 2), (chan, 3)):
        os.dup2(fd, target)
    os.closerange(4, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    if failure:
        os.write(2, failure.encode())
        return
    limits = types.SimpleNamespace(**request["limits"])  # the fields of `sandbox.Limits`
    if "chroot" in layers:
        _enter_jail(workdir, limits.disk_mb, uid)
    os.write(3, marshal.dumps({"isolation": layers}))
    alive_r, alive_w = os.pipe()  # end-of-file on alive_r: this supervisor is gone
    pid = os.fork()
    if pid == 0:
        os.close(3)
        os.close(alive_w)
        _program(request, limits, uid, cwd, "socket-patch" in layers, alive_r)
    os.close(alive_r)
    for fd in (0, 1, 2):  # the caller sees end-of-file as soon as the program's side is gone
        os.close(fd)
    pidfd, poller = os.pidfd_open(pid), select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(3, select.POLLIN)
    while not any(fd == pidfd for fd, _ in poller.poll()):
        with contextlib.suppress(OSError):  # leaving it unread would reset the caller's socket
            os.read(3, 16)
        poller.unregister(3)  # "kill", or the caller went away: either way, kill
        _kill_group(pid)
    status = os.waitpid(pid, 0)[1]  # with a pid namespace, everything else is dead by now
    _kill_group(pid)  # without one, what is left of the program's process group
    with contextlib.suppress(OSError):
        os.write(3, marshal.dumps({"wait": status}))


def _isolate(workdir: str, uid: int | None) -> tuple[list[str], str]:
    """Enter whatever namespaces the kernel allows; return the layers applied and the cwd."""
    layers = ["session", "rlimits", "wall-clock", "scrubbed-env", "output-cap"]
    if uid is not None and _unshare(NEWNS | NEWNET | NEWPID | NEWIPC | NEWUTS):
        layers += ["no-sysv-ipc"] if _no_sysv_ipc() else []
        _build_jail(workdir)
        return layers + ["netns", "pidns", "ipcns", "utsns", "mountns", "chroot", "tmpfs", "uid"], "/tmp"
    if uid is None and _unshare(NEWUSER | NEWNET | NEWPID | NEWIPC):
        for name, line in (("setgroups", "deny"), ("uid_map", f"{os.getuid()} {os.getuid()} 1"),
                           ("gid_map", f"{os.getgid()} {os.getgid()} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(line)
        layers += ["no-sysv-ipc"] if _no_sysv_ipc() else []
        return layers + ["userns", "netns", "pidns", "ipcns", "tmpdir"], workdir
    if uid is not None:
        os.chown(workdir, uid, uid)
        layers.append("uid")
    return layers + ["tmpdir", "socket-patch"], workdir


def _no_sysv_ipc() -> bool:
    """Allow no SysV shared memory, message queue or semaphore set in our fresh IPC namespace: they
    hold memory no process maps, outside the address-space limit (a run at memory_mb=128 held 300 MB
    of shared memory, with no bound). These limits are per IPC namespace; False where /proc/sys is
    read-only (a container) or refuses us (a user namespace)."""
    try:
        for name, value in (("shmall", "0"), ("msgmni", "0"), ("sem", "0 0 0 0")):
            with open(f"/proc/sys/kernel/{name}", "w") as f:
                f.write(value)
    except OSError:
        return False
    return True


def _build_jail(root: str) -> None:
    """A tree of read-only binds: system dirs, the interpreter's prefix and a few devices."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID, "size=1m,mode=0755")
    prefix = os.path.realpath(sys.base_prefix)
    binds = [d for d in _SYSTEM_DIRS if os.path.lexists(d)]
    if not any(prefix.startswith(d + "/") for d in binds):
        binds.append(prefix)
    for path in binds:
        if os.path.islink(path):
            os.symlink(os.readlink(path), root + path)
        else:
            os.makedirs(root + path)
            _mount(path, root + path, None, MS_BIND | MS_REC)
            _mount(None, root + path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.mkdir(root + "/dev")
    for name in _DEVICES:
        open(f"{root}/dev/{name}", "w").close()
        _mount(f"/dev/{name}", f"{root}/dev/{name}", None, MS_BIND)
    os.mkdir(root + "/dev/shm")
    os.mkdir(root + "/tmp")


def _enter_jail(root: str, disk_mb: int, uid: int) -> None:
    """Private size-limited tmpfs at /tmp and /dev/shm for the program, the tree made read-only,
    chroot. /dev/shm is where glibc's sem_open and shm_open create their files: without it
    multiprocessing's Lock, Queue and Pool raised FileNotFoundError."""
    for path in ("/tmp", "/dev/shm"):
        _mount("tmpfs", root + path, "tmpfs", MS_NOSUID | MS_NODEV,
               f"size={disk_mb}m,mode=0700,uid={uid},gid={uid}")
    _mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID)
    os.chroot(root)


def _program(request: dict, limits: types.SimpleNamespace, uid: int | None, cwd: str,
             patch_socket: bool, alive_fd: int) -> NoReturn:
    """The program's process (pid 1 of its namespace): drop privileges, set limits, run the code.

    Being pid 1 means signals it sends itself without a handler are ignored and that the kernel
    kills everything else in the namespace when it exits."""
    code = 1
    try:
        os.setpgid(0, 0)  # its own group, so the supervisor can kill all of it
        os.chdir(cwd)
        libc = _libc()
        libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            # counted per uid, so only meaningful for a uid of the run's own
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes,) * 2)
        libc.prctl(1, signal.SIGKILL)  # die with the supervisor (a fork and the uid change clear it)
        # a supervisor that died before this line sent no signal: its pipe end is closed then
        if select.select([alive_fd], [], [], 0)[0]:
            return
        os.close(alive_fd)
        cpu, mb = int(limits.timeout_s) + 1, 1 << 20
        for kind, value in ((resource.RLIMIT_CPU, (cpu, cpu + 1)),
                            (resource.RLIMIT_AS, (limits.memory_mb * mb,) * 2),
                            (resource.RLIMIT_FSIZE, (limits.max_file_mb * mb,) * 2),
                            (resource.RLIMIT_NOFILE, (limits.max_open_files,) * 2),
                            (resource.RLIMIT_CORE, (0, 0))):
            resource.setrlimit(kind, value)
        os.environ.clear()
        os.environ.update(PATH="/usr/local/bin:/usr/bin:/bin", HOME=cwd, TMPDIR=cwd, LANG="C.UTF-8")
        tempfile.tempdir = None  # the server's cached one (the caller's TMPDIR) is not in the jail
        if patch_socket:
            socket.socket = socket.create_connection = socket.socketpair = _no_network
        code = _run_source(request["source"], _Secret(request["nonce"]), request["module"])
    finally:
        _exit(code)


class _Secret:
    """Holds the end-of-program secret without showing it in a repr or a frame dump."""

    __slots__ = ("value",)

    def __init__(self, value: bytes) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"


def _fresh_interpreter_state(module: str) -> tuple[types.ModuleType, TextIO]:
    """A fresh __main__ (named `module`), exit/quit, argv and std streams as `python solution.py`
    starts with; returns __main__ and the new stdout."""
    import _sitebuiltins
    import atexit
    import builtins

    atexit._clear()
    main = sys.modules["__main__"] = sys.modules[module] = types.ModuleType(module)
    # as `python solution.py` (3.9+) sets it: absolute, in the working directory; code reading
    # `os.path.dirname(__file__)` raised NameError
    main.__file__ = os.path.join(os.getcwd(), "solution.py")
    # exit() and quit() come from `site`, which the server skips (-S); programs call them often
    builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
    builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
    sys.argv = ["solution.py"]
    # as CPython on Linux (LANG=C.UTF-8) sets them up: surrogateescape, and stdin keeps "\r\n" and "\r"
    sys.stdin = sys.__stdin__ = open(0, encoding="utf-8", errors="surrogateescape", newline="\n",
                                     closefd=False)
    out = sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", errors="surrogateescape",
                                             closefd=False)
    sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", errors="backslashreplace",
                                       closefd=False, buffering=1)
    return main, out


def _run_source(source: str, secret: _Secret, module: str = "__main__") -> int:
    """Emulate `python solution.py`: fresh __main__ (whose __name__ is `module`), then atexit,
    thread joins and flushes."""
    import atexit

    main, out = _fresh_interpreter_state(module)
    # the secret goes through a copy of fd 1: a program may close or redirect its own fd 1
    # (`with open(1, "w")`, silencing prints), which python solution.py survives; the proof must too
    proof = os.dup(1)
    finished = False
    try:
        exec(compile(source, "solution.py", "exec"), main.__dict__)
        code, finished = 0, True
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if not isinstance(stop.code, (int, type(None))):
            print(stop.code, file=sys.stderr)
    except BaseException as error:  # the traceback starts at the program, not at this function
        traceback.print_exception(type(error), error, error.__traceback__.tb_next)
        code = 1
    _join_threads()
    atexit._run_exitfuncs()
    # As CPython at exit: flush sys.stdout and sys.stderr unless None or closed (a program may
    # close them), 120 if that fails; the original stdout as its finaliser does, errors ignored
    failed = False
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and not _is_closed(stream):
            try:
                stream.flush()
            except Exception:
                failed = True
    # then, as CPython's finalisation clears modules, release the program's globals: a file it
    # never closed (`out = open(1, "w")`) is flushed by its finaliser instead of lost at os._exit
    main.__dict__.clear()
    gc.collect()
    with contextlib.suppress(Exception):
        if not out.closed:
            out.flush()
    if failed:
        return 120
    if finished and code == 0:
        with contextlib.suppress(OSError):  # closed by the program itself: no proof, exit as CPython
            os.write(proof, secret.value)
    return code & 0xFF


def _join_threads() -> None:
    """Wait for every non-daemon thread, as CPython does at exit: also for one that a joined thread
    started after the first look (a single pass let it die at os._exit, its output lost)."""
    while alive := [thread for thread in threading.enumerate()
                    if thread is not threading.current_thread() and not thread.daemon]:
        for thread in alive:
            thread.join()


def _is_closed(stream: object) -> bool:
    try:
        return bool(stream.closed)
    except Exception:  # no usable `closed`: CPython then tries to flush it
        return False


def _no_network(*args: object, **kwargs: object) -> NoReturn:
    raise PermissionError("network access is disabled in the r1lab sandbox")


# the program may replace os._exit (harmlessly, in CPython): its process must still end here, not
# return into the supervisor's and the server's code and exit 1
_exit = os._exit
_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
        _LIBC.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    return _LIBC


def _unshare(flags: int) -> bool:
    return _libc().unshare(flags) == 0


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    if _libc().mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")



if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    _serve(int(sys.argv[2]), int(sys.argv[3]))
