"""The sandbox: statuses, limits, isolation and the pool, each checked by what a program can do."""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from r1lab.rewards.code import CodeTask, code_reward
from r1lab.rewards.sandbox import SANDBOX_UIDS, Job, Limits, Sandbox, execute

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="the jail (namespaces, chroot, own uid) needs root")


def _status(pid: str) -> dict[str, str]:
    """A process's /proc status fields ({} once it has ended)."""
    try:
        return dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    except OSError:
        return {}


def _ours_or_orphaned(pid: str) -> bool:
    """Whether a process descends from this test process, or lost its parent (a leak reparented to
    init): another test run's live sandboxes on the same machine are neither."""
    me, parent = str(os.getpid()), _status(pid).get("PPid", "").strip()
    if parent in ("0", "1"):
        return True
    while parent not in ("", "0", "1"):
        if parent == me:
            return True
        parent = _status(parent).get("PPid", "").strip()
    return False


def sandbox_processes() -> list[int]:
    """Pids of live processes under a sandbox uid (only runs as root get one) that are this run's
    or leaked (orphaned). Zombies are dead: a program whose supervisor died with a killed server is
    reparented to pid 1, and stays a zombie until pid 1 reaps it, which some init processes do late."""
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        fields = _status(status.parent.name)
        uid = fields.get("Uid", "").split()
        if fields.get("State", "").strip().startswith("Z"):
            continue
        if uid and int(uid[0]) in SANDBOX_UIDS and _ours_or_orphaned(status.parent.name):
            pids.append(int(status.parent.name))
    return pids


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as box:
        yield box
    assert sandbox_processes() == []


def run(sandbox: Sandbox, source: str, **limits) -> object:
    stdin = limits.pop("stdin", None)
    return sandbox.execute(Job(source=source, stdin=stdin, limits=Limits(**limits)))


@pytest.mark.parametrize("limits, error, message", [
    ({"timeout_s": float("nan")}, ValueError, "timeout_s must be positive and finite, got nan"),  # spun forever
    ({"timeout_s": float("inf")}, ValueError, "timeout_s must be positive and finite, got inf"),  # OverflowError
    ({"timeout_s": -1}, ValueError, "timeout_s must be positive and finite, got -1"),
    ({"timeout_s": "3"}, TypeError, "timeout_s must be a number of seconds, got '3'"),
    ({"memory_mb": -5}, ValueError, "memory_mb must be at least 1, got -5"),  # ran with no memory limit
    ({"disk_mb": 0}, ValueError, "disk_mb must be at least 1, got 0"),  # tmpfs size=0 has no bound
    ({"memory_mb": 1.5}, TypeError, "memory_mb must be an int, got 1.5"),  # failed, empty stderr
    ({"max_processes": True}, TypeError, "max_processes must be an int, got True"),
    ({"max_output_bytes": -1}, ValueError, "max_output_bytes must be at least 0, got -1"),
])
def test_a_limit_that_cannot_be_enforced_is_refused_by_name(limits, error, message):
    with pytest.raises(error, match=re.escape(message)):
        Limits(**limits)


def test_limits_at_their_least_are_accepted():
    Limits(timeout_s=0.1, memory_mb=1, max_processes=1, max_output_bytes=0, max_file_mb=0,
           max_open_files=1, disk_mb=1)


def test_passed_program_gets_stdin_and_returns_stdout(sandbox):
    result = run(sandbox, "import sys\nprint(sys.stdin.read().upper(), end='')", stdin="héllo")
    assert (result.status, result.exit_code, result.stdout, result.stderr) == ("passed", 0, "HÉLLO", "")
    assert result.exited_cleanly and 0 < result.duration_s < 5


def test_exception_fails_with_the_programs_traceback(sandbox):
    result = run(sandbox, "x = 1\nraise ValueError('boom')")
    assert (result.status, result.exit_code) == ("failed", 1)
    assert 'File "solution.py", line 2' in result.stderr and "ValueError: boom" in result.stderr
    assert "sandbox.py" not in result.stderr


@pytest.mark.parametrize("early_exit", [
    "import sys; sys.exit(0)",
    "raise SystemExit",
    "import os; os._exit(0)",
    "import os, signal; os.kill(os.getpid(), signal.SIGKILL); import sys; sys.exit(0)",
])
def test_exit_0_before_the_end_is_not_passed(sandbox, early_exit):
    result = run(sandbox, f"print('started', flush=True)\n{early_exit}\nprint('the end')")
    assert result.status == "failed" and result.exit_code == 0
    assert result.stdout == "started\n"
    assert result.exited_cleanly  # what stdin/stdout tasks accept


@pytest.mark.parametrize("call", ["exit()", "quit()", "exit(0)"])
def test_exit_and_quit_work_as_in_python(sandbox, call):
    """`site` (skipped by the server's -S) defines them; a stdio answer that ends with exit()
    raised NameError and scored 0."""
    result = run(sandbox, f"print(2 * int(input()))\n{call}\nprint('unreachable')", stdin="21\n")
    assert (result.stdout, result.exit_code, result.stderr) == ("42\n", 0, "")
    assert result.exited_cleanly and result.status == "failed"  # stopped before its end, as sys.exit


def test_a_harness_program_does_not_run_its_main_block(sandbox):
    """HumanEval's and MBPP's harnesses exec the test program in a fresh namespace: a solution's
    `if __name__ == "__main__":` demo (here one that waits for input) does not run."""
    source = "def f():\n    return 1\nif __name__ == '__main__':\n    print(int(input()))\nassert f() == 1\n"
    assert sandbox.execute(Job(source=source, module="solution")).status == "passed"
    assert "EOFError" in sandbox.execute(Job(source=source)).stderr  # `python solution.py` runs it


def test_exit_code_and_syntax_error_are_failures(sandbox):
    assert run(sandbox, "import sys; sys.exit(3)").exit_code == 3
    result = run(sandbox, "def f(:\n  pass")
    assert result.status == "failed" and "SyntaxError" in result.stderr


def test_infinite_loop_times_out_on_the_wall_clock(sandbox):
    start = time.monotonic()
    result = run(sandbox, "while True:\n    pass", timeout_s=1.0)
    assert result.status == "timeout" and not result.exited_cleanly
    assert 1.0 <= time.monotonic() - start < 4.0


def test_sleeping_program_times_out_too(sandbox):
    result = run(sandbox, "import time\ntime.sleep(60)", timeout_s=0.5)
    assert result.status == "timeout" and result.duration_s < 3.0


def test_allocating_10_gb_hits_the_memory_limit(sandbox):
    result = run(sandbox, "x = bytearray(10 * 1024 ** 3)\nprint('allocated')", memory_mb=512)
    assert result.status == "memory" and "allocated" not in result.stdout


def test_printing_1_gb_is_cut_at_the_output_cap(sandbox):
    start = time.monotonic()
    result = run(sandbox, "import sys\nfor _ in range(1 << 20):\n    sys.stdout.write('x' * 1024)",
                 max_output_bytes=1 << 16, timeout_s=30)
    assert result.status == "error" and "stdout exceeded" in result.detail
    assert len(result.stdout) == 1 << 16 and time.monotonic() - start < 10


def test_output_up_to_the_cap_passes_and_one_byte_more_does_not(sandbox):
    result = run(sandbox, "print('y' * 1000, end='')", max_output_bytes=1000)
    assert result.status == "passed" and result.stdout == "y" * 1000
    result = run(sandbox, "import sys\nprint('y' * 1001, end='', file=sys.stderr)", max_output_bytes=1000)
    assert result.status == "error" and result.stderr == "y" * 1000


def test_large_files_are_refused_in_the_working_directory(sandbox):
    source = ("f = open('big', 'wb')\ntry:\n    f.write(b'x' * (3 << 20)); f.flush()\n"
              "except OSError as e:\n    print('refused', e.errno)\nelse:\n    print('wrote')")
    assert run(sandbox, source, max_file_mb=1).stdout.startswith("refused")


@needs_root
def test_runs_report_the_full_jail(sandbox):
    layers = set(run(sandbox, "pass").isolation)
    assert {"session", "rlimits", "netns", "pidns", "mountns", "chroot", "uid"} <= layers
    assert "socket-patch" not in layers


def test_environment_is_scrubbed():
    os.environ["R1LAB_TEST_CANARY"] = "secret-value"
    try:
        with Sandbox(max_workers=1) as box:  # a server started while the canary is set
            result = box.execute(Job(source="import os, json\nprint(json.dumps(dict(os.environ)))"))
    finally:
        del os.environ["R1LAB_TEST_CANARY"]
    assert set(json.loads(result.stdout)) <= {"PATH", "HOME", "TMPDIR", "LANG"}


@pytest.fixture
def home_canary():
    path = Path.home() / f".r1lab-sandbox-canary-{os.getpid()}"
    path.write_text("host secret")
    yield path
    path.unlink()


@needs_root
def test_host_files_are_neither_visible_nor_writable(sandbox, tmp_path, home_canary):
    canary = tmp_path / "canary.txt"
    canary.write_text("keep me")
    canary.chmod(0o666)
    tmp_path.chmod(0o777)
    repo = Path(__file__).resolve().parents[1]
    probes = [str(canary), str(repo / "pyproject.toml"), str(home_canary), "/etc/passwd", "/proc/1"]
    source = f"""
import os
import re
import signal
print([os.path.exists(p) for p in {probes!r}])
for target in [{str(canary)!r}, '/usr/r1lab-pwned', '/r1lab-pwned', {str(tmp_path / 'new')!r}]:
    try:
        open(target, 'w').write('pwned')
        print('wrote', target)
    except OSError as error:
        print('refused', error.strerror)
open('mine.txt', 'w').write('ok')
print(open('mine.txt').read(), os.getcwd())
"""
    result = run(sandbox, source)
    lines = result.stdout.splitlines()
    assert lines[0] == str([False] * len(probes)) and lines[-1] == "ok /tmp"
    assert not any(line.startswith("wrote") for line in lines)
    assert canary.read_text() == "keep me" and not (tmp_path / "new").exists()
    assert not Path("/usr/r1lab-pwned").exists() and not Path("/r1lab-pwned").exists()


@needs_root
def test_each_run_gets_a_fresh_working_directory(sandbox):
    first = run(sandbox, "open('left.txt', 'w').write('x')\nimport os\nprint(os.listdir('.'))")
    second = run(sandbox, "import os\nprint(os.listdir('.'), os.getuid())")
    assert first.stdout.strip() == "['left.txt']" and second.stdout.startswith("[] ")
    assert int(second.stdout.split()[1]) in SANDBOX_UIDS


def test_no_network_not_even_to_the_hosts_loopback(sandbox):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        source = (f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                  "s.sendall(b'leak')\nprint('connected')")
        result = run(sandbox, source)
        assert result.status == "failed" and "connected" not in result.stdout
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_signalling_the_host_harms_nothing(sandbox):
    targets = [os.getpid(), sandbox.server_pid, -1]
    source = f"""
import os, signal
for pid in {targets!r}:
    try:
        os.kill(pid, signal.SIGKILL)
        print('delivered', pid)
    except OSError as error:
        print('refused', pid, error.strerror)
"""
    result = run(sandbox, source)
    assert "delivered" not in result.stdout and result.stdout.count("refused") == 3
    assert run(sandbox, "print(1)").stdout == "1\n"  # the server is alive


@needs_root
def test_fork_bomb_is_contained_and_leaves_nothing(sandbox):
    source = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    start = time.monotonic()
    result = run(sandbox, source, timeout_s=1.5, max_processes=8)
    assert result.status == "timeout" and time.monotonic() - start < 6
    assert sandbox_processes() == []


@needs_root
def test_a_daemon_does_not_outlive_its_run(sandbox):
    source = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(60)
    os._exit(0)
time.sleep(0.2)
print('parent done')
"""
    result = run(sandbox, source)
    assert result.status == "passed" and result.duration_s < 5
    assert sandbox_processes() == []


def test_pool_runs_in_parallel_but_never_more_than_its_workers():
    source = "import time\nstart = time.monotonic()\ntime.sleep(0.4)\nprint(start, time.monotonic())"
    with Sandbox(max_workers=2) as box:
        results = box.map([Job(source=source) for _ in range(6)])
    spans = [tuple(map(float, r.stdout.split())) for r in results]
    overlap = max(sum(s <= t < e for s, e in spans) for t, _ in spans)
    assert overlap == 2  # two at once: parallel, and not oversubscribed


def test_map_keeps_order_and_execute_uses_the_default_sandbox():
    with Sandbox(max_workers=2) as box:
        results = box.map([Job(source=f"print({i})") for i in range(10)])
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(10)]
    assert execute("print('default')", timeout_s=5).stdout == "default\n"


def _own_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sandboxes started from here make their directories under tmp_path, not the machine's /tmp
    (where another run's sandboxes come and go)."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)


def test_tempfile_works_in_a_sandbox_started_under_another_tmpdir(tmp_path, monkeypatch):
    """The server's tempfile cached the caller's TMPDIR, which the forked program inherited: a path
    that does not exist in its jail."""
    _own_tmpdir(tmp_path, monkeypatch)
    source = "import tempfile\nwith tempfile.TemporaryFile() as f:\n    f.write(b'x')\nprint('ok')\n"
    with Sandbox(max_workers=1) as box:
        result = box.execute(Job(source=source))
    assert (result.status, result.stdout) == ("passed", "ok\n"), result.stderr


def test_working_directories_are_removed_when_the_sandbox_closes(tmp_path, monkeypatch):
    _own_tmpdir(tmp_path, monkeypatch)

    def ours() -> set[str]:
        return {p.name for p in Path(tempfile.gettempdir()).glob("r1lab-*")}

    before = ours()
    with Sandbox(max_workers=2) as box:
        box.map([Job(source="open('f', 'w').write('x')") for _ in range(4)])
        assert len(ours() - before) >= 1  # the waiting supervisors' directories
    assert ours() - before == set()


def test_close_cleans_up_even_when_a_later_fork_holds_the_servers_stdin(tmp_path, monkeypatch):
    """A process forked after the sandbox started (a worker pool) inherits the write end of the
    server's stdin, so end-of-file never comes; `close` says "stop" instead. Without it the server
    was killed after a 5 s wait and its waiting supervisors' directories were left behind."""
    _own_tmpdir(tmp_path, monkeypatch)

    def ours() -> set[str]:
        return {p.name for p in Path(tempfile.gettempdir()).glob("r1lab-*")}

    before = ours()
    box = Sandbox(max_workers=1).start()
    assert box.execute(Job(source="print(1)")).stdout == "1\n"
    child = os.fork()
    if child == 0:  # holds every inherited descriptor, as a forked pool worker does
        time.sleep(30)
        os._exit(0)
    try:
        box.close()
        assert ours() - before == set()
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)


@pytest.mark.parametrize("ending", ["sys.stdout.close()", "sys.stdout = None", "sys.stderr.close()",
                                    "sys.stdout = open(os.devnull, 'w'); sys.stdout.close()"])
def test_closing_or_dropping_a_std_stream_exits_0_as_in_python(sandbox, ending):
    """CPython flushes sys.stdout and sys.stderr at exit only when they are open; the sandbox
    flushed them regardless, so a program that closed one exited 120 and a finished HumanEval
    answer or stdio program scored 0."""
    result = run(sandbox, f"import os, sys\nprint('done', flush=True)\n{ending}\n")
    assert (result.status, result.exit_code, result.stdout) == ("passed", 0, "done\n"), result.stderr


def test_a_stdout_whose_flush_fails_at_exit_exits_120_as_in_python(sandbox):
    source = ("import sys\nclass Broken:\n    def write(self, text):\n        return len(text)\n"
              "    def flush(self):\n        raise OSError('broken')\nsys.stdout = Broken()\n")
    result = run(sandbox, source)
    assert (result.status, result.exit_code) == ("failed", 120)


def _in_child(action) -> bytes:
    """What `action()` returns in a forked child (given 5 s), as bytes."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(read)
            signal.alarm(5)
            os.write(write, action())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read()
    os.waitpid(child, 0)
    return said


def test_a_forked_child_runs_jobs_on_its_own_server_and_leaves_the_parents_alone():
    """A child forked after a `map` inherited the pool's bookkeeping but not its threads, so its
    `map` waited forever; and its `close` (or the inherited atexit hook of the default sandbox)
    told the parent's server to stop, killing the parent's runs."""
    with Sandbox(max_workers=1) as box:
        assert box.map([Job(source="print(1)")])[0].stdout == "1\n"  # the pool's thread now idles
        server = box.server_pid
        assert _in_child(lambda: box.map([Job(source="print(2)")])[0].stdout.encode()) == b"2\n"
        assert _in_child(lambda: box.close() or b"closed") == b"closed"
        assert box.server_pid == server and box.execute(Job(source="print(3)")).stdout == "3\n"


def test_close_does_not_raise_when_the_server_already_died():
    """The "stop" it could not deliver stayed buffered, and closing the pipe flushed it again:
    BrokenPipeError out of `close` (and out of a `with Sandbox()` block)."""
    box = Sandbox(max_workers=1).start()
    os.kill(box.server_pid, signal.SIGKILL)
    box._server.wait()
    box.close()
    assert box._server is None


def test_a_run_the_server_cannot_take_reports_an_error_and_leaks_no_descriptors(monkeypatch):
    """The read ends of the output pipes were left open on every such run."""
    box = Sandbox(max_workers=1)

    def refuse(payload: bytes, fds: list[int]) -> None:
        raise OSError("no server")

    monkeypatch.setattr(box, "_send", refuse)
    before = len(os.listdir("/proc/self/fd"))
    results = [box.execute(Job(source="print(1)")) for _ in range(3)]
    assert [(r.status, r.detail) for r in results] == [("error", "sandbox server unavailable: no server")] * 3
    assert len(os.listdir("/proc/self/fd")) == before
    box.close()


def test_standard_streams_are_set_up_as_python_sets_them_up():
    """stdin translated "\\r\\n" and "\\r" to "\\n" (`python solution.py` on Linux keeps them, so
    `len(input())` differed), and stdin/stdout were strict where CPython uses surrogateescape."""
    with Sandbox(max_workers=1) as box:
        result = box.execute(Job(source="import sys\nprint(repr(sys.stdin.read()), sys.stdin.errors)\n"
                                        "print('\\udcff' + 'x')", stdin="a\r\nb\r"))
    assert (result.status, result.stdout) == ("passed", "'a\\r\\nb\\r' surrogateescape\n\ufffdx\n"), result.stderr


def test_a_broken_control_socket_is_retried_on_a_fresh_server():
    """On a failed send the retry killed the server but, finding it not yet dead, sent again on
    the same broken socket: the run was an error though a fresh server was one restart away."""
    with Sandbox(max_workers=1) as box:
        old = box.server_pid
        broken, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        peer.close()
        box._control.close()
        box._control = broken  # the server lives on, but nothing reads what is sent here
        result = box.execute(Job(source="print(1)"))
        assert (result.status, result.stdout) == ("passed", "1\n"), result.detail
        assert box.server_pid != old


def test_a_run_on_a_server_that_just_died_is_rerun_on_a_fresh_one():
    """A server killed (OOM killer, a stray signal) between two runs still looked alive to the
    next one, whose request went to a dying supervisor: the run was an error, every time."""
    with Sandbox(max_workers=1) as box:
        for _ in range(3):
            box.execute(Job(source="print(1)"))
            old = box.server_pid
            os.kill(old, signal.SIGKILL)
            result = box.execute(Job(source="print(2)"))
            assert (result.status, result.stdout) == ("passed", "2\n"), result.detail
            # on a loaded machine the dying server may still have served that run; once the
            # kill has landed, the sandbox must not keep using it
            _wait_until_ended(old)
            assert box.server_pid != old


def test_waiting_supervisors_that_are_killed_are_replaced():
    """A waiting supervisor killed (OOM killer, a stray signal) was never replaced, and the server
    lived on: once all were gone, every later run waited for none and was an error, 16 s each."""
    with Sandbox(max_workers=1) as box:
        assert box.execute(Job(source="print(1)")).status == "passed"
        for _ in range(2):  # the replacements can be killed too
            waiting = [int(pid) for pid in Path(f"/proc/{box.server_pid}/task/{box.server_pid}/children")
                       .read_text().split()]
            assert waiting
            for pid in waiting:
                # the last run's supervisor may end by itself between the listing and the kill (a
                # ProcessLookupError that made this test flaky under load)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for pid in waiting:
                _wait_until_ended(pid)
            result = box.execute(Job(source="print(2)", limits=Limits(timeout_s=2.0)))
            assert (result.status, result.stdout) == ("passed", "2\n"), result.detail


def _wait_until_ended(pid: int, within_s: float = 30.0) -> None:
    """Wait until process `pid` has exited (a zombie, or gone), polling its /proc status."""
    deadline = time.monotonic() + within_s
    while _status(str(pid)).get("State", "Z").strip()[:1] not in ("Z", "X"):
        assert time.monotonic() < deadline, f"process {pid} still alive after {within_s} s"
        time.sleep(0.01)


def test_file_is_defined_as_for_a_script(sandbox):
    """`__file__` raised NameError: `python solution.py` sets it (absolute, since Python 3.9)."""
    source = "import os\nprint(os.path.basename(__file__), os.path.isabs(__file__))\n" \
             "if __name__ == '__main__':\n    print('main')\n"
    result = sandbox.execute(Job(source=source))
    assert (result.status, result.stdout) == ("passed", "solution.py True\nmain\n"), result.stderr


def test_a_closed_sandbox_runs_again_with_map_as_with_execute():
    """After `close` (the end of a `with` block), `execute` started a new server but `map`
    raised RuntimeError: its pool had been shut down for good."""
    box = Sandbox(max_workers=1)
    with box:
        assert box.map([Job(source="print(1)")])[0].stdout == "1\n"
    with box:
        assert [r.stdout for r in box.map([Job(source="print(2)"), Job(source="print(3)")])] == ["2\n", "3\n"]


def test_a_program_whose_supervisor_died_before_it_could_follow_it_does_not_run(tmp_path):
    """The die-with-the-supervisor signal is cleared by fork and by the uid change, and set again
    only after them: a supervisor killed in between sent no signal, and the program ran on without
    its CPU limit. It now reads the supervisor's end of a pipe as closed and exits before running."""
    import types

    from r1lab.rewards import _jail

    limits = types.SimpleNamespace(**vars(Limits()))
    source = f"open({str(tmp_path / 'ran')!r}, 'w').close()"
    alive_r, alive_w = os.pipe()
    os.close(alive_w)  # the supervisor is gone
    pid = os.fork()
    if pid == 0:  # the program's process, as the supervisor forks it (no uid change: not root here)
        _jail._program({"source": source, "nonce": "x", "module": "__main__"}, limits, None, str(tmp_path),
                       False, alive_r)
    os.close(alive_r)
    status = os.waitpid(pid, 0)[1]
    assert os.waitstatus_to_exitcode(status) == 1
    assert not (tmp_path / "ran").exists()


# The code reward and the sandbox against odd but legitimate programs.
ADD = CodeTask(kind="mbpp", asserts=("assert add(1, 2) == 3", "assert add(0, 0) == 0"))
SUM_STDIO = CodeTask.from_stdio([("1 2\n", "3\n"), ("5 7\n", "12\n")], match="exact")


@pytest.mark.parametrize("program", [
    "import os\nwith open(1, 'w') as out:\n    out.write(str(sum(map(int, input().split()))) + '\\n')\n",
    "import os\nout = os.fdopen(1, 'w')\nout.write(str(sum(map(int, input().split()))) + '\\n')\nout.close()\n",
])
def test_a_stdio_program_that_closes_its_stdout_file_descriptor_passes(sandbox, program):
    """`with open(1, 'w')` is a fast-output idiom; closing fd 1 leaves `python solution.py` exiting 0
    with its output written, but the sandbox then failed to write its end-of-run secret to fd 1,
    raised, and exited 1: a correct program scored 0."""
    assert code_reward(program, SUM_STDIO, sandbox=sandbox) == 1.0


@pytest.mark.parametrize("silence", [
    "import os\nos.close(1)",
    "import os\nos.dup2(os.open(os.devnull, os.O_WRONLY), 1)",
])
def test_a_passing_program_that_closes_or_redirects_fd_1_still_passes(sandbox, silence):
    """The end-of-run proof went through fd 1, so a program whose stdout was closed or sent to
    /dev/null (to silence prints) failed tests it passed."""
    program = f"def add(a, b):\n    return a + b\n{silence}\n"
    assert code_reward(program, ADD, sandbox=sandbox) == 1.0
    wrong = f"def add(a, b):\n    return 0\n{silence}\n"
    assert code_reward(wrong, ADD, sandbox=sandbox) == 0.0


@pytest.mark.parametrize("early", ["import sys\nsys.exit(0)", "import os\nos._exit(0)"])
def test_an_early_exit_after_silencing_stdout_still_fails(sandbox, early):
    program = f"def add(a, b):\n    return 0\nimport os\nos.close(1)\n{early}\n"
    assert code_reward(program, ADD, sandbox=sandbox) == 0.0


@pytest.mark.parametrize("opened", ["open(1, 'w')", "__import__('os').fdopen(1, 'w')"])
def test_a_file_on_fd_1_left_open_is_flushed_at_exit_as_in_python(sandbox, opened):
    """CPython's finalisation releases the program's globals, so a file object it never closed is
    flushed; the sandbox ended with os._exit and dropped what it buffered: no output, score 0."""
    program = f"out = {opened}\nout.write(str(sum(map(int, input().split()))) + '\\n')\n"
    assert code_reward(program, SUM_STDIO, sandbox=sandbox) == 1.0


def test_the_left_open_file_is_flushed_after_sys_stdout_as_in_python(sandbox):
    result = execute("f = open(1, 'w')\nf.write('a\\n')\nprint('b')\n", sandbox=sandbox)
    assert (result.status, result.stdout) == ("passed", "b\na\n")  # what `python -c` prints


# A supervisor whose server died before it set its death signal (PR_SET_PDEATHSIG) exits at once.
def test_a_supervisor_orphaned_before_its_death_signal_exits_at_once(tmp_path):
    """It lived on as root in its own namespaces, waiting on the old server's socket for a request."""
    from r1lab.rewards import _jail

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    took_r, took_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # as if forked by a server that is gone: its parent is not that server
        try:
            _jail._supervise(theirs, took_w, str(tmp_path), server=os.getppid() + 10**6)
        finally:
            os._exit(1)  # never back into pytest
    deadline = time.monotonic() + 10
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:  # still waiting for a request: stop it
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    for fd in (took_r, took_w):
        os.close(fd)
    ours.close()
    theirs.close()
    assert done[0] == pid and os.waitstatus_to_exitcode(done[1]) == 0



# Replacing a dead server closes the old server's control socket and stdin pipe.
def test_a_replaced_server_leaves_no_open_socket_or_pipe_behind():
    with Sandbox(max_workers=1) as box:
        old = box.start()._server
        control = box._control
        os.kill(old.pid, signal.SIGKILL)
        old.wait()
        assert box.execute(Job(source="print(1)")).stdout == "1\n"
        assert box._server is not old
        assert control.fileno() == -1 and old.stdin.closed


# A killed server's supervisors' directories are removed when a fresh server replaces it.
def test_a_killed_servers_directories_are_removed_by_the_next_server(tmp_path, monkeypatch):
    _own_tmpdir(tmp_path, monkeypatch)

    def ours() -> set[str]:
        return {p.name for p in Path(tempfile.gettempdir()).glob("r1lab-*")}

    with Sandbox(max_workers=1) as box:
        os.kill(box.server_pid, signal.SIGKILL)
        box._server.wait()
        left = ours()
        assert left  # the waiting supervisors' directories
        assert box.execute(Job(source="print(1)")).stdout == "1\n"
        assert ours() & left == set()
    assert ours() == set()


# SysV shared memory, message queues and semaphore sets cannot be created in a run.
@needs_root
def test_sysv_ipc_memory_outside_the_address_space_limit_is_refused(sandbox):
    source = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
              "libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]\n"
              "print(libc.shmget(0, 1 << 20, 0o1600), libc.msgget(0, 0o1600), libc.semget(0, 1, 0o1600))")
    result = run(sandbox, source)
    assert (result.status, result.stdout) == ("passed", "-1 -1 -1\n"), result.stderr
    assert "no-sysv-ipc" in result.isolation



# A server whose caller has gone without close() (a forked child leaving with os._exit) removes
# the directory the caller made for it.
def test_a_server_whose_caller_left_without_close_removes_its_directory(tmp_path, monkeypatch):
    _own_tmpdir(tmp_path, monkeypatch)
    box = Sandbox(max_workers=1)  # never started here: the child starts its own server
    assert _in_child(lambda: box.map([Job(source="print(2)")])[0].stdout.encode()) == b"2\n"
    deadline = time.monotonic() + 10
    while list(tmp_path.glob("r1lab-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob("r1lab-*")) == []


# A non-daemon thread started by another one after the program's end is waited for, as by CPython.
def test_a_thread_started_by_a_thread_at_the_end_is_waited_for(sandbox):
    source = ("import threading, time\ndef late():\n    time.sleep(0.2)\n    print('late')\n"
              "def starter():\n    time.sleep(0.2)\n    threading.Thread(target=late).start()\n"
              "threading.Thread(target=starter).start()\nprint('main')\n")
    result = run(sandbox, source)
    assert (result.status, result.stdout) == ("passed", "main\nlate\n")


# A program that replaces os._exit ends as under `python solution.py`.
def test_a_program_that_replaces_os_exit_ends_as_in_python(sandbox):
    result = run(sandbox, "import os\nos._exit = lambda code: None\nprint('hi')\n")
    assert (result.status, result.exit_code, result.stdout, result.stderr) == ("passed", 0, "hi\n", "")
    early = run(sandbox, "import os, sys\nos._exit = lambda code: None\nsys.exit(0)\nprint('hi')\n")
    assert (early.status, early.exit_code, early.stdout) == ("failed", 0, "")


# multiprocessing (Pool, Queue, locks: POSIX semaphores in /dev/shm) works in a run, within its limits.
SQUARES = CodeTask(kind="mbpp", asserts=("assert squares([1, 2, 3]) == [1, 4, 9]",))
POOL_SQUARES = ("import multiprocessing\ndef square(x):\n    return {body}\n"
                "def squares(xs):\n    with multiprocessing.Pool(2) as pool:\n"
                "        return pool.map(square, xs)\n")


def test_a_solution_using_a_process_pool_is_scored_on_its_answers(sandbox):
    assert code_reward(POOL_SQUARES.format(body="x * x"), SQUARES, sandbox=sandbox) == 1.0
    assert code_reward(POOL_SQUARES.format(body="x + x"), SQUARES, sandbox=sandbox) == 0.0


def test_a_process_pools_workers_keep_the_time_and_memory_limits(sandbox):
    worker_loop = POOL_SQUARES.format(body="next(y for y in iter(int, 1) if y)") + "squares([1, 2])"
    assert run(sandbox, worker_loop, timeout_s=1).status == "timeout"
    worker_alloc = POOL_SQUARES.format(body="len(bytearray(10 ** 10))") + "squares([1, 2])"
    assert run(sandbox, worker_alloc, memory_mb=256).status == "memory"


@needs_root
def test_dev_shm_is_private_and_capped_at_disk_mb(sandbox):
    fill = ("import os\nprint(os.listdir('/dev/shm'))\nwith open('/dev/shm/x', 'wb') as f:\n"
            "    for _ in range(9):\n        f.write(bytes(1 << 20))\n")
    result = run(sandbox, fill, disk_mb=8, max_file_mb=64)
    assert (result.status, result.stdout) == ("failed", "[]\n")
    assert "No space left on device" in result.stderr
    again = run(sandbox, "import os\nprint(os.listdir('/dev/shm'))")
    assert (again.status, again.stdout) == ("passed", "[]\n")


# A server that cannot be started leaves neither its directory nor its sockets behind.
def test_a_server_that_fails_to_start_leaves_no_directory_or_descriptor(tmp_path, monkeypatch):
    _own_tmpdir(tmp_path, monkeypatch)
    monkeypatch.setattr("sys.executable", str(tmp_path / "no-such-python"))
    box = Sandbox(max_workers=1)
    before = len(os.listdir("/proc/self/fd"))
    results = [box.execute(Job(source="print(1)")) for _ in range(3)]
    assert [r.status for r in results] == ["error"] * 3
    assert "no-such-python" in results[0].detail
    assert (list(tmp_path.glob("r1lab-*")), len(os.listdir("/proc/self/fd"))) == ([], before)
    box.close()


# Run as an unprivileged user (no chroot, no own uid), the sandbox still grades, times out and cleans up.
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
AS_NOBODY = """import json, os, sys
sys.path.insert(0, sys.argv[1])
from r1lab.rewards.code import CodeTask, code_reward
from r1lab.rewards.sandbox import Sandbox, execute
task = CodeTask(kind="mbpp", asserts=("assert add(1, 2) == 3", "assert add(0, 0) == 0"))
with Sandbox(max_workers=1) as box:
    rewards = [code_reward(f"def add(a, b):\\n    return {body}\\n", task, sandbox=box)
               for body in ("a + b", "a - b")]
    loop = execute("while True:\\n    pass", timeout_s=1, sandbox=box)
    daemon = execute("import os, time\\nif os.fork() == 0:\\n    os.setsid()\\n    time.sleep(60)",
                     sandbox=box)
print(json.dumps({"uid": os.getuid(), "rewards": rewards, "loop": [loop.status, loop.duration_s],
                  "daemon": daemon.status, "isolation": loop.isolation, "left": os.listdir(sys.argv[2])}))
"""


def _python_for_nobody() -> str | None:
    """An interpreter user nobody may run that imports r1lab from this tree (this one may sit
    under a home directory nobody cannot enter)."""
    if not ROOT or not shutil.which("setpriv"):
        return None
    tree = str(Path(__file__).resolve().parents[1])
    probe = "import os, sys; sys.path.insert(0, sys.argv[1]); import r1lab.rewards.code; " \
            "sys.exit(not os.access(sys.executable, os.X_OK))"
    candidates = [sys.executable, shutil.which("python3"), shutil.which("python3", path=os.defpath)]
    for python in dict.fromkeys(filter(None, candidates)):
        if subprocess.run([*NOBODY, python, "-I", "-c", probe, tree], capture_output=True,
                          timeout=30).returncode == 0:
            return python
    return None


def _started_under(tmpdir: str) -> list[str]:
    """Live processes whose environment (as exec'd, inherited by forks) has a TMPDIR in tmpdir."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):
            if any(var.startswith(f"TMPDIR={tmpdir}/".encode()) for var in environ.read_bytes().split(b"\0")):
                found.append(environ.parent.name)
    return [pid for pid in found if not _status(pid).get("State", "").strip().startswith("Z")]


def test_as_an_unprivileged_user_runs_are_graded_timed_out_and_cleaned_up():
    python = _python_for_nobody()
    if python is None:
        pytest.skip("needs root, setpriv and a Python that user nobody may run and that imports r1lab")
    workroot = tempfile.mkdtemp(prefix="r1lab-test-nobody-")
    try:
        os.chmod(workroot, 0o777)
        tree = str(Path(__file__).resolve().parents[1])
        done = subprocess.run([*NOBODY, python, "-I", "-c", AS_NOBODY, tree, workroot], timeout=60,
                              capture_output=True, text=True, env={"TMPDIR": workroot, "PATH": os.defpath})
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert (report["uid"], report["rewards"], report["loop"][0]) == (65534, [1.0, 0.0], "timeout")
        assert 1.0 <= report["loop"][1] < 3.0
        assert "chroot" not in report["isolation"] and "uid" not in report["isolation"]
        assert (report["daemon"], report["left"]) == ("passed", [])
        assert _started_under(workroot) == []  # the server, its supervisors, the daemon
    finally:
        shutil.rmtree(workroot, ignore_errors=True)


@pytest.mark.parametrize("bad", [0, -3, 2.0, True, "2"])
def test_a_worker_count_below_one_or_not_an_int_is_refused(bad):
    with pytest.raises(ValueError, match=rf"max_workers must be an int >= 1 or None, got {re.escape(repr(bad))}"):
        Sandbox(max_workers=bad)
    with Sandbox(max_workers=1) as one:  # nothing started: the server starts on the first run
        assert one.max_workers == 1
