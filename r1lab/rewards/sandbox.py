"""Run untrusted Python (what a model wrote) in a separate, isolated, time- and memory-limited process.

Design. A small *fork server* (`_jail.py`, run as `python -I -S _jail.py --serve`, stdlib only)
is started once per `Sandbox`. It keeps a few *supervisors* forked ahead of time, each already in
fresh namespaces with its read-only tree built, blocked on a shared request socket; the first free
one takes a request, forks the *program* (pid 1 of its pid namespace) and reports its exit status
straight to the caller. A run therefore costs two forks and no interpreter start. A pool of at most
one thread per usable core sends the requests, so parallel runs never oversubscribe the cores.
Needs Linux >= 5.3 (pidfd).

Isolation layers (process group, pid / mount / network / IPC namespaces, rlimits, a read-only
chroot, its own uid, a scrubbed environment, output caps), their fallbacks and what each does NOT
protect against (memfd memory, a kernel exploit): docs/sandbox.md.

The server side of all this (supervisors, namespaces, the read-only tree, dropping privileges,
limits, running the source) lives in `_jail.py`; this module is the caller's side: it sends the
requests, has `_collect.py` read the output under the caps and the wall clock and judge it, and
turns that into an `ExecutionResult`.

`ExecutionResult.isolation` lists the layers a run actually got. `"passed"` means the program ran
to its end (proven by a per-run secret the sandbox writes only after the program's code returned,
and keeps out of the program's source, argv and environment), exited 0, and hit no limit. That
proof stops generic early exits (`sys.exit(0)`, `os._exit(0)`, a signal to itself), not a program
written against this sandbox: the secret is written from the program's own process, so the
program can reach it (a two-line `sys._getframe` lookup does), just as it can make in-process
tests pass with objects whose `__eq__` always returns True. No in-process check can rule that
out; read "passed" as "the tests raised nothing", as the HumanEval / MBPP harnesses do.
"""
from __future__ import annotations

import contextlib
import marshal
import math
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Literal, Sequence

from r1lab.fields import is_int
from r1lab.rewards._collect import Collector, verdict
# Re-exported here; imported only in the caller's process (the server runs _jail.py as a script).
from r1lab.rewards._jail import SANDBOX_UIDS as SANDBOX_UIDS

Status = Literal["passed", "failed", "timeout", "memory", "error"]

_SERVER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_jail.py")


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

    def __post_init__(self) -> None:
        # each of these ran before, badly: a NaN timeout spun the caller forever, an infinite one
        # raised OverflowError, a negative memory_mb lifted the limit, disk_mb=0 is an unbounded
        # tmpfs, and a float memory_mb failed the run with an empty stderr
        timeout = self.timeout_s
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"Limits: timeout_s must be a number of seconds, got {timeout!r}")
        if not 0 < timeout < math.inf:
            raise ValueError(f"Limits: timeout_s must be positive and finite, got {timeout!r}")
        for name, least in (("memory_mb", 1), ("max_processes", 1), ("max_output_bytes", 0),
                            ("max_file_mb", 0), ("max_open_files", 1), ("disk_mb", 1)):
            value = getattr(self, name)
            if not is_int(value):
                raise TypeError(f"Limits: {name} must be an int, got {value!r}")
            if value < least:
                raise ValueError(f"Limits: {name} must be at least {least}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class Job:
    """One program to run: its source, its standard input and its limits."""

    source: str
    stdin: str | None = None
    limits: Limits = field(default_factory=Limits)
    # the program's __name__: HumanEval's and MBPP's harnesses exec the test program in a fresh
    # namespace, where a solution's `if __name__ == "__main__":` block does not run
    module: str = "__main__"


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
        """max_workers: concurrent runs at most (None: one per usable core; more are capped to them)."""
        # 0 ran on every core and -3 on one, in silence
        if max_workers is not None and (not is_int(max_workers) or max_workers < 1):
            raise ValueError(f"Sandbox: max_workers must be an int >= 1 or None, got {max_workers!r}")
        self.max_workers = min(max_workers or os.cpu_count() or 1, len(os.sched_getaffinity(0)))
        self._server: subprocess.Popen | None = None
        self._control: socket.socket | None = None
        self._workroot: str | None = None  # the server's TMPDIR, holding its supervisors' directories
        self._fresh_state()

    def _fresh_state(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_workers)
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="r1lab-sandbox")

    def _unless_forked(self) -> None:
        """In a forked child, drop the parent's pool (its threads did not come along: `map` waited
        forever) and server (closing the copy stopped the parent's): the child starts its own."""
        if self._pid != os.getpid():
            self._release()  # only this process's copies
            self._fresh_state()

    def _release(self) -> None:
        """Close our ends of the server's control socket and stdin, and forget that server."""
        if self._control is not None:
            self._control.close()
            self._server.stdin.close()
        self._server = self._control = self._workroot = None

    def _retire(self) -> None:
        """Release a server that has ended, and remove what its supervisors left (a killed one
        cleaned up nothing; a dead server's supervisors die with it, and with them its runs)."""
        if self._workroot is not None:
            shutil.rmtree(self._workroot, ignore_errors=True)
        self._release()

    def start(self) -> Sandbox:
        """Start the server now rather than on the first run (it takes ~0.1 s)."""
        self._unless_forked()
        with self._lock:
            if self._server is None or self._server.poll() is not None:
                self._start_server()
        return self

    @property
    def server_pid(self) -> int:
        return self.start()._server.pid

    def execute(self, job: Job) -> ExecutionResult:
        """Run one job (blocking). Never raises for anything the program does."""
        self._unless_forked()
        with self._slots:
            result = self._run(job)
            server = self._server
            if result.status == "error" and server is not None and server.poll() is not None:
                # its server died (not the program's doing): once more, on a fresh server
                result = self._run(job)
            return result

    def map(self, jobs: Sequence[Job]) -> list[ExecutionResult]:
        """Run many jobs in parallel, results in the order of `jobs`."""
        self._unless_forked()
        return list(self._pool.map(self.execute, jobs))

    def close(self) -> None:
        """Stop the server; it kills whatever still runs. A later run or `map` starts a new one."""
        self._unless_forked()
        self._pool.shutdown(wait=True)
        # threads start on demand; a shut-down pool made a later `map` raise RuntimeError
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="r1lab-sandbox")
        with self._lock:
            if self._control is not None:
                self._control.close()
                with contextlib.suppress(OSError):  # a server that already died has no reader
                    # unbuffered: a "stop" left in the buffer made the close() below raise BrokenPipeError
                    os.write(self._server.stdin.fileno(), b"stop")
                self._server.stdin.close()
                try:
                    self._server.wait(timeout=5)
                except subprocess.TimeoutExpired:  # it kills its programs on exit; if it lingers, end it
                    self._server.kill()
                    self._server.wait()
                self._retire()

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
                    # reaped: just killed, it still polled alive and the retry reused its socket
                    self._server.kill()
                    self._server.wait()
                    if attempt:
                        raise

    def _start_server(self) -> None:
        self._retire()  # a dead server's: dropping them unclosed leaked a socket and a pipe per restart
        # its own TMPDIR, traversable (a run under its own uid without namespaces works below it)
        self._workroot = tempfile.mkdtemp(prefix="r1lab-sandbox-")
        os.chmod(self._workroot, 0o711)
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._server = subprocess.Popen(
                [sys.executable, "-I", "-S", _SERVER_SCRIPT, "--serve", str(child.fileno()),
                 str(self.max_workers + 1)],
                # nothing of the caller's environment but where temporary directories go
                pass_fds=[child.fileno()], env={"TMPDIR": self._workroot}, stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, start_new_session=True)
        except BaseException:  # no server will remove its directory, and close() (no server to stop) did not
            parent.close()
            shutil.rmtree(self._workroot, ignore_errors=True)
            self._workroot = None
            raise
        finally:
            child.close()
        self._control = parent

    def _run(self, job: Job) -> ExecutionResult:
        nonce = secrets.token_hex(16).encode()
        chan, remote = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        files = [_unlinked_file(job.source), _unlinked_file(job.stdin or "")]
        request = marshal.dumps({"nonce": nonce, "limits": asdict(job.limits), "module": job.module})
        start = time.monotonic()
        try:
            self._send(request, [remote.fileno(), files[0], files[1], out_w, err_w])
        except OSError as exc:
            for fd in (out_r, err_r):  # no collector will read (and close) them
                os.close(fd)
            chan.close()
            return ExecutionResult(status="error", exit_code=None, stdout="", stderr="",
                                   duration_s=0.0, detail=f"sandbox server unavailable: {exc}")
        finally:
            for fd in (out_w, err_w, *files):
                os.close(fd)
            remote.close()
        with chan:
            run = Collector(chan, out_r, err_r, job.limits, start).collect()
        return _classify(run, nonce, job.limits, time.monotonic() - start)


def _unlinked_file(text: str) -> int:
    """A readable fd holding `text`, with no name anyone else could open."""
    with tempfile.TemporaryFile() as f:
        f.write(text.encode("utf-8", "surrogatepass"))
        f.flush()
        fd = os.dup(f.fileno())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _classify(run: Collector, nonce: bytes, limits: Limits, duration: float) -> ExecutionResult:
    """Turn what the collector saw into a status; only a clean, complete run is "passed"."""
    out = bytes(run.buffers[run.stdout_fd])
    err = bytes(next(b for fd, b in run.buffers.items() if fd != run.stdout_fd))
    reached_end = out.endswith(nonce)
    out = out[: -len(nonce)] if reached_end else out.replace(nonce, b"")
    for name, data in (("stdout", out), ("stderr", err)):
        if len(data) > limits.max_output_bytes and not run.breach:  # within the secret's slack
            run.breach = f"{name} exceeded {limits.max_output_bytes} bytes"
    status, detail, code = verdict(run, reached_end, err, limits)
    decode = lambda b: b[: limits.max_output_bytes].decode("utf-8", "replace")  # noqa: E731
    return ExecutionResult(status=status, exit_code=code, stdout=decode(out), stderr=decode(err),
                           duration_s=duration, detail=detail, isolation=run.isolation)


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
