"""Run untrusted Python (what a model wrote) in a separate, isolated, time- and memory-limited process.

Design. A small *fork server* (this file run as `python -I -S sandbox.py --serve`, stdlib only) is
started once per `Sandbox`. It keeps a few *supervisors* forked ahead of time, each already in
fresh namespaces with its read-only tree built, blocked on a shared request socket; the first free
one takes a request, forks the *program* (pid 1 of its pid namespace) and reports its exit status
straight to the caller. A run therefore costs two forks and no interpreter start. A pool of at most
one thread per usable core sends the requests, so parallel runs never oversubscribe the cores.
Needs Linux >= 5.3 (pidfd).

Isolation layers, and what each does NOT protect against:

- Process group and session (`setsid`), killed whole at the end. A child that calls `setsid()`
  escapes the group; the pid namespace below catches it, the fallback does not.
- Pid namespace (root or user namespace): the program is its pid 1, so when it exits the kernel
  kills every process left in it, daemons that double-forked included. (As pid 1 it also ignores
  signals it sends itself without a handler.) Not available -> process group only.
- Resource limits (per process): CPU seconds, address space (`memory_mb`), processes and threads
  of the run's uid, file size, open files, no core dumps. The address-space limit is per process,
  so one run can hold at most `max_processes * memory_mb`; it counts the interpreter itself (~30 MB).
  As root the NPROC limit only works because the program runs as its own uid (below).
- Wall-clock timeout, enforced by the parent, which kills the whole run.
- Fresh working directory: with a mount namespace, a private size-limited tmpfs (`disk_mb`) at
  `/tmp` that vanishes with the run; otherwise a `mkdtemp` directory deleted afterwards.
- Filesystem (root): a mount namespace and `chroot` into a read-only tree holding only the
  system's /usr, /lib*, /bin, the interpreter's prefix and /dev/{null,zero,random,urandom}, all
  `nosuid`. Home directories, /etc, /proc, the repository and the data sets are not there at all.
- Unprivileged uid (root): the program runs as a random uid in [1.5e9, 2e9) with no groups, no
  capabilities and `no_new_privs`, so it cannot write the read-only tree, signal the host or raise
  its limits. A kernel exploit is out of scope: this is not a VM.
- Scrubbed environment: the server starts with an empty environment; the program sees only
  PATH, HOME, TMPDIR and LANG.
- Network: a new, empty network namespace (loopback down). Without namespaces the fallback only
  replaces `socket.socket` in the program, which `import _socket` gets around; `isolation` says so.
- Output: stdout and stderr are each capped (`max_output_bytes`); more output ends the run.
- IPC and UTS namespaces, when available.

Fallbacks, reported in `isolation`: not root but user namespaces allowed -> user, network, pid and
IPC namespaces, no chroot or own uid (the host's files are open to the caller's permissions, and
NPROC is not set because it would count all the caller's processes). Namespaces refused -> session,
rlimits, own uid when root, a `mkdtemp` directory and the socket patch: the program then sees the
host's files as that uid may, and a child calling `setsid()` can outlive the run.

`ExecutionResult.isolation` lists the layers a run actually got. `"passed"` means the program ran
to its end (proven by a per-run secret the sandbox writes only after the program's code returned,
and keeps out of the program's source, argv and environment), exited 0, and hit no limit. A
program that deliberately searches its own memory for that secret could forge it; that needs a
targeted exploit, not an early `sys.exit(0)` or `os._exit(0)`.
"""
from __future__ import annotations

import contextlib
import ctypes
import marshal
import os
import resource
import select
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Literal, NoReturn, Sequence

Status = Literal["passed", "failed", "timeout", "memory", "error"]

SANDBOX_UIDS = range(1_500_000_000, 2_000_000_000)  # each run (as root) gets a random one
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_DEVICES = ("null", "zero", "random", "urandom")
(NEWNS, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET) = (
    0x20000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000)
(MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE) = (
    1, 2, 4, 32, 4096, 16384, 1 << 18)


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one run may use. Defaults suit HumanEval/MBPP-sized programs."""

    timeout_s: float = 5.0
    memory_mb: int = 1024
    max_processes: int = 8  # processes and threads at once
    max_output_bytes: int = 1 << 20  # per stream
    max_file_mb: int = 16
    max_open_files: int = 64
    disk_mb: int = 64


@dataclass(frozen=True, kw_only=True)
class Job:
    """One program to run: its source, its standard input and its limits."""

    source: str
    stdin: str | None = None
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True, kw_only=True)
class ExecutionResult:
    """How a run ended. `exit_code` is negative for a signal, None if the run never ended."""

    status: Status
    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float
    detail: str = ""
    isolation: tuple[str, ...] = ()

    @property
    def exited_cleanly(self) -> bool:
        """Exited 0 within every limit, whether or not it reached its end (for stdin/stdout tasks)."""
        return self.exit_code == 0 and self.status in ("passed", "failed")


class Sandbox:
    """A fork server plus a pool of at most one concurrent run per usable core."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max(1, min(max_workers or os.cpu_count() or 1,
                                      len(os.sched_getaffinity(0))))
        self._lock = threading.Lock()
        self._server: subprocess.Popen | None = None
        self._control: socket.socket | None = None
        self._slots = threading.BoundedSemaphore(self.max_workers)
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="r1lab-sandbox")

    def start(self) -> Sandbox:
        """Start the server now rather than on the first run (it takes ~0.1 s)."""
        with self._lock:
            if self._server is None or self._server.poll() is not None:
                self._start_server()
        return self

    @property
    def server_pid(self) -> int:
        return self.start()._server.pid

    def execute(self, job: Job) -> ExecutionResult:
        """Run one job (blocking). Never raises for anything the program does."""
        with self._slots:
            return self._run(job)

    def map(self, jobs: Sequence[Job]) -> list[ExecutionResult]:
        """Run many jobs in parallel, results in the order of `jobs`."""
        return list(self._pool.map(self.execute, jobs))

    def close(self) -> None:
        """Stop the server; it kills whatever still runs before it exits."""
        self._pool.shutdown(wait=True)
        with self._lock:
            if self._control is not None:
                self._control.close()
                self._server.stdin.close()
                self._server.wait(timeout=10)
                self._server = self._control = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, payload: bytes, fds: list[int]) -> None:
        with self._lock:
            for attempt in (0, 1):
                if self._server is None or self._server.poll() is not None:
                    self._start_server()
                try:
                    socket.send_fds(self._control, [payload], fds)
                    return
                except OSError:
                    self._server.kill()
                    if attempt:
                        raise

    def _start_server(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._server = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__), "--serve", str(child.fileno()),
             str(self.max_workers + 1)],
            pass_fds=[child.fileno()], env={}, stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, start_new_session=True)
        child.close()
        self._control = parent

    def _run(self, job: Job) -> ExecutionResult:
        nonce = secrets.token_hex(16).encode()
        chan, remote = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        files = [_unlinked_file(job.source), _unlinked_file(job.stdin or "")]
        request = marshal.dumps({"nonce": nonce, "limits": asdict(job.limits)})
        start = time.monotonic()
        try:
            self._send(request, [remote.fileno(), files[0], files[1], out_w, err_w])
        except OSError as exc:
            return ExecutionResult(status="error", exit_code=None, stdout="", stderr="",
                                   duration_s=0.0, detail=f"sandbox server unavailable: {exc}")
        finally:
            for fd in (out_w, err_w, *files):
                os.close(fd)
            remote.close()
        with chan:
            run = _Collector(chan, out_r, err_r, job.limits, start).collect()
        return _classify(run, nonce, job.limits, time.monotonic() - start)


def _unlinked_file(text: str) -> int:
    """A readable fd holding `text`, with no name anyone else could open."""
    with tempfile.TemporaryFile() as f:
        f.write(text.encode("utf-8", "surrogatepass"))
        f.flush()
        fd = os.dup(f.fileno())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class _Collector:
    """Reads a run's output under the caps and the wall clock; asks its supervisor to kill on a breach."""

    def __init__(self, chan: socket.socket, out_r: int, err_r: int, limits: Limits, start: float):
        self.chan, self.limits = chan, limits
        self.buffers = {out_r: bytearray(), err_r: bytearray()}
        self.stdout_fd = out_r
        self.deadline = start + limits.timeout_s + 10.0  # until the program starts
        self.wait_status: int | None = None
        self.isolation: tuple[str, ...] = ()
        self.breach = ""

    def collect(self) -> _Collector:
        sel = selectors.DefaultSelector()
        for fd in self.buffers:
            sel.register(fd, selectors.EVENT_READ)
        sel.register(self.chan, selectors.EVENT_READ)
        try:
            while sel.get_map():
                remaining = self.deadline - time.monotonic()
                events = sel.select(max(remaining, 0)) if remaining > 0 else []
                if not events and time.monotonic() >= self.deadline:
                    if self.wait_status is not None or self.breach:
                        break  # drained what there was, or gave up after a kill
                    self._kill("timeout")
                for key, _ in events:
                    self._on_ready(sel, key.fileobj)
        finally:
            sel.close()
            for fd in self.buffers:
                os.close(fd)
        return self

    def _on_ready(self, sel: selectors.BaseSelector, source: object) -> None:
        if source is self.chan:
            try:
                message = self.chan.recv(4096)
            except ConnectionResetError:
                return  # the error is now cleared; anything still queued is read next time
            if not message:
                sel.unregister(self.chan)
                self.breach = self.breach or "the run's supervisor went away"
                return
            news = marshal.loads(message)
            if "isolation" in news:  # the program starts now: the wall clock starts too
                self.isolation = tuple(news["isolation"])
                self.deadline = time.monotonic() + self.limits.timeout_s
            if "wait" in news:
                self.wait_status = news["wait"]
                sel.unregister(self.chan)
                self.deadline = min(self.deadline, time.monotonic() + 1.0)  # drain the pipes
            return
        chunk = os.read(source, 1 << 16)
        buffer = self.buffers[source]
        if not chunk:
            sel.unregister(source)
        elif len(buffer) + len(chunk) > self.limits.max_output_bytes + 64:  # 64: room for the secret
            buffer += chunk[: max(0, self.limits.max_output_bytes - len(buffer))]
            sel.unregister(source)
            self._kill(f"{'stdout' if source == self.stdout_fd else 'stderr'} exceeded "
                       f"{self.limits.max_output_bytes} bytes")
        else:
            buffer += chunk

    def _kill(self, why: str) -> None:
        self.breach = self.breach or why
        self.deadline = time.monotonic() + 5.0  # wait this long for the supervisor to confirm
        try:
            self.chan.send(b"kill")
        except OSError:
            pass


def _classify(run: _Collector, nonce: bytes, limits: Limits, duration: float) -> ExecutionResult:
    """Turn what the collector saw into a status; only a clean, complete run is "passed"."""
    out = bytes(run.buffers[run.stdout_fd])
    err = bytes(next(b for fd, b in run.buffers.items() if fd != run.stdout_fd))
    reached_end = out.endswith(nonce)
    out = out[: -len(nonce)] if reached_end else out.replace(nonce, b"")
    for name, data in (("stdout", out), ("stderr", err)):
        if len(data) > limits.max_output_bytes and not run.breach:  # within the secret's slack
            run.breach = f"{name} exceeded {limits.max_output_bytes} bytes"
    status, detail, code = _verdict(run, reached_end, err, limits)
    decode = lambda b: b[: limits.max_output_bytes].decode("utf-8", "replace")  # noqa: E731
    return ExecutionResult(status=status, exit_code=code, stdout=decode(out), stderr=decode(err),
                           duration_s=duration, detail=detail, isolation=run.isolation)


def _verdict(run: _Collector, reached_end: bool, err: bytes, limits: Limits
             ) -> tuple[Status, str, int | None]:
    st = run.wait_status
    code = None if st is None else (-os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st))
    if not run.isolation:
        why = run.breach if run.breach != "timeout" else "no supervisor answered in time"
        tail = err.decode("utf-8", "replace")[-300:]
        return "error", f"the sandbox did not start the program ({why}) {tail}", code
    if run.breach == "timeout":
        return "timeout", f"wall clock exceeded {limits.timeout_s} s", code
    if run.breach or st is None:
        return "error", run.breach or "no exit status", code
    if code in (-signal.SIGXCPU, -signal.SIGKILL):  # as pid 1 only the kernel can do this
        return "timeout", "killed by the kernel: CPU time limit", code
    if code != 0:
        last = err.rstrip().rsplit(b"\n", 1)[-1]
        if last.startswith(b"MemoryError"):
            return "memory", f"address space limit ({limits.memory_mb} MB)", code
        return "failed", f"exit code {code}", code
    if not reached_end:
        return "failed", "exited 0 before reaching the end of the program", code
    return "passed", "", code


# ---------------------------------------------------------------- the fork server (its own process)

def _serve(control_fd: int, warm: int) -> NoReturn:
    """Keep `warm` supervisors waiting on the request socket, replace each one that takes a
    request, reap them and delete their directories; stop when the caller closes our stdin."""
    control = socket.socket(fileno=control_fd)
    took_r, took_w = os.pipe()
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ, "caller")
    sel.register(took_r, selectors.EVENT_READ, "took")
    children: dict[int, tuple[int, str]] = {}  # pid -> (pidfd, directory)

    def spawn() -> None:
        workdir = tempfile.mkdtemp(prefix="r1lab-")
        pid = os.fork()
        if pid == 0:
            _supervise(control, took_w, workdir)
        children[pid] = (os.pidfd_open(pid), workdir)
        sel.register(children[pid][0], selectors.EVENT_READ, pid)

    for _ in range(warm):
        spawn()
    while True:
        for key, _ in sel.select():
            if key.data == "caller" and not os.read(0, 64):
                for pid, (_, workdir) in children.items():
                    _kill_group(pid)
                    os.waitpid(pid, 0)
                    shutil.rmtree(workdir, ignore_errors=True)
                os._exit(0)
            elif key.data == "took":
                for _ in os.read(took_r, 256):
                    spawn()
            elif isinstance(key.data, int):
                pidfd, workdir = children.pop(key.data)
                os.waitpid(key.data, 0)
                sel.unregister(pidfd)
                os.close(pidfd)
                shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _supervise(control: socket.socket, took_w: int, workdir: str) -> NoReturn:
    """One run's root-side supervisor, forked ahead of time: enter fresh namespaces and build
    the read-only tree, then take one request from the shared socket and see it through."""
    try:
        os.setsid()
        _libc().prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the server
        uid = secrets.choice(SANDBOX_UIDS) if os.geteuid() == 0 else None
        try:
            layers, cwd, failure = *_isolate(workdir, uid), ""
        except Exception:  # fail closed: the request this one takes gets the error
            layers, cwd, failure = [], workdir, traceback.format_exc()
        message, fds, _, _ = socket.recv_fds(control, 1 << 16, 8)
        if not message:  # the sandbox was closed
            os._exit(0)
        os.write(took_w, b"+")
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
    limits = Limits(**request["limits"])
    if "chroot" in layers:
        _enter_jail(workdir, limits.disk_mb, uid)
    os.write(3, marshal.dumps({"isolation": layers}))
    pid = os.fork()
    if pid == 0:
        os.close(3)
        _program(request, limits, uid, cwd, "socket-patch" in layers)
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
        _build_jail(workdir)
        return layers + ["netns", "pidns", "ipcns", "utsns", "mountns", "chroot", "tmpfs", "uid"], "/tmp"
    if uid is None and _unshare(NEWUSER | NEWNET | NEWPID | NEWIPC):
        for name, line in (("setgroups", "deny"), ("uid_map", f"{os.getuid()} {os.getuid()} 1"),
                           ("gid_map", f"{os.getgid()} {os.getgid()} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(line)
        return layers + ["userns", "netns", "pidns", "ipcns", "tmpdir"], workdir
    if uid is not None:
        os.chown(workdir, uid, uid)
        layers.append("uid")
    return layers + ["tmpdir", "socket-patch"], workdir


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
    os.mkdir(root + "/tmp")


def _enter_jail(root: str, disk_mb: int, uid: int) -> None:
    """A private size-limited tmpfs /tmp for the program, the tree made read-only, chroot."""
    _mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={disk_mb}m,mode=0700,uid={uid},gid={uid}")
    _mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID)
    os.chroot(root)


def _program(request: dict, limits: Limits, uid: int | None, cwd: str,
             patch_socket: bool) -> NoReturn:
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
        libc.prctl(1, signal.SIGKILL)  # die with the supervisor (the uid change cleared it)
        cpu, mb = int(limits.timeout_s) + 1, 1 << 20
        for kind, value in ((resource.RLIMIT_CPU, (cpu, cpu + 1)),
                            (resource.RLIMIT_AS, (limits.memory_mb * mb,) * 2),
                            (resource.RLIMIT_FSIZE, (limits.max_file_mb * mb,) * 2),
                            (resource.RLIMIT_NOFILE, (limits.max_open_files,) * 2),
                            (resource.RLIMIT_CORE, (0, 0))):
            resource.setrlimit(kind, value)
        os.environ.clear()
        os.environ.update(PATH="/usr/local/bin:/usr/bin:/bin", HOME=cwd, TMPDIR=cwd, LANG="C.UTF-8")
        if patch_socket:
            socket.socket = socket.create_connection = socket.socketpair = _no_network
        code = _run_source(request["source"], _Secret(request["nonce"]))
    finally:
        os._exit(code)


class _Secret:
    """Holds the end-of-program secret without showing it in a repr or a frame dump."""

    __slots__ = ("value",)

    def __init__(self, value: bytes) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"


def _run_source(source: str, secret: _Secret) -> int:
    """Emulate `python solution.py`: fresh __main__, then atexit, thread joins and flushes."""
    import atexit
    import types

    atexit._clear()
    main = sys.modules["__main__"] = types.ModuleType("__main__")
    sys.argv = ["solution.py"]
    sys.stdin = sys.__stdin__ = open(0, encoding="utf-8", closefd=False)
    out = sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", closefd=False)
    sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", errors="backslashreplace",
                                       closefd=False, buffering=1)
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
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    try:
        for stream in {out, sys.stdout, sys.stderr}:
            stream.flush()
    except Exception:
        return 120  # what CPython returns when flushing stdout fails at exit
    if finished and code == 0:
        os.write(1, secret.value)
    return code & 0xFF


def _no_network(*args: object, **kwargs: object) -> NoReturn:
    raise PermissionError("network access is disabled in the r1lab sandbox")


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


# ---------------------------------------------------------------- module-level convenience API

_DEFAULT: Sandbox | None = None
_DEFAULT_LOCK = threading.Lock()


def default_sandbox() -> Sandbox:
    """The process-wide sandbox (created on first use, closed at interpreter exit)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            import atexit

            _DEFAULT = Sandbox()
            atexit.register(_DEFAULT.close)
        return _DEFAULT


def execute(source: str, *, stdin: str | None = None, timeout_s: float = 5.0,
            memory_mb: int = 1024, sandbox: Sandbox | None = None, **limits: int) -> ExecutionResult:
    """Run Python `source` in the sandbox. `limits` may set any other `Limits` field."""
    job = Job(source=source, stdin=stdin,
              limits=Limits(timeout_s=timeout_s, memory_mb=memory_mb, **limits))
    return (sandbox or default_sandbox()).execute(job)


def execute_many(jobs: Sequence[Job], *, sandbox: Sandbox | None = None) -> list[ExecutionResult]:
    """Run many jobs in parallel (at most one per usable core), results in order."""
    return (sandbox or default_sandbox()).map(jobs)


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    _serve(int(sys.argv[2]), int(sys.argv[3]))
