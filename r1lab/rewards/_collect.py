"""The caller's side of one sandbox run, after the request is sent: reading the program's output
under the caps and the wall clock (asking its supervisor to kill on a breach), and the verdict on
what was seen. `sandbox.Sandbox.execute` drives it; see `sandbox.py` for the whole design."""
from __future__ import annotations

import marshal
import os
import selectors
import signal
import socket
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from r1lab.rewards.sandbox import Limits, Status


class Collector:
    """Reads a run's output under the caps and the wall clock; asks its supervisor to kill on a breach."""

    def __init__(self, chan: socket.socket, out_r: int, err_r: int, limits: Limits, start: float):
        self.chan, self.limits = chan, limits
        self.buffers = {out_r: bytearray(), err_r: bytearray()}
        self.stdout_fd = out_r
        self.deadline = start + limits.timeout_s + 10.0  # until the program starts
        self.wait_status: int | None = None
        self.isolation: tuple[str, ...] = ()
        self.breach = ""

    def collect(self) -> Collector:
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


def verdict(run: Collector, reached_end: bool, err: bytes, limits: Limits) -> tuple[Status, str, int | None]:
    """The run's status, its detail and its exit code (None without one): only a program that
    started isolated, reached its end, exited 0 and hit no limit has "passed"."""
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
