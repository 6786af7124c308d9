"""What `trapalert stack up|down` guarantees (issue 18), with real processes:

- a failure mid-start stops everything that call started (no process, no server, no state left);
- a port held by another process is named (pid, command line) in one line, exit code 1, no traceback;
- what a killed `stack up` left running, and forgot to record, is found and stopped by `stack down`;
- two `stack up` at once on one checkout end in one stack (the lock: the second waits, then refuses);
- a held lock makes another call say which one is in progress.

Every test uses its own state folder and ports; processes are found by the mark the stack puts in the
environment of what it starts (that folder's path), never by name, so parallel test runs are left alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from functions.localhost.services import PROJECT_ROOT, EmbeddedPostgres, _alive, free_port, port_holders
from functions.localhost.stack import MARKER_ENV, Stack, StackError

PORT_NAMES = ("host", "scoring", "blob", "queue", "table", "postgres")
TRAPALERT = Path(sys.executable).parent / "trapalert"


def marked_processes(state_dir: Path) -> dict[int, str]:
    """Every live process whose environment carries this stack's mark: {pid: command line}."""
    mark = str(state_dir.resolve())
    found = {}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get(MARKER_ENV) == mark:
                found[proc.pid] = " ".join(proc.info["cmdline"] or [])
        except psutil.Error:
            continue
    return found


def postgres_pid(state_dir: Path) -> int | None:
    pid = EmbeddedPostgres(state_dir / "postgres", 0).postmaster_pid()
    return pid if pid and _alive(pid) else None


class Env:
    """A state folder, a settings file and free ports for one test's stack; ``cli`` runs `trapalert`."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        self.state_dir = tmp_path / "state"
        self.settings = tmp_path / "local.settings.json"
        self.ports = {name: free_port() for name in PORT_NAMES}
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTEST_", "SCORING_", "TRAPALERT_")) and k != "DATABASE_URL"}
        env.update({f"TRAPALERT_{n.upper()}_PORT": str(p) for n, p in self.ports.items()})
        env.update({"TRAPALERT_STATE_DIR": str(self.state_dir),
                    "TRAPALERT_LOCAL_SETTINGS": str(self.settings),
                    "SCORING_BACKEND": "null", "PYTHONUNBUFFERED": "1"})
        self.env = env
        for k, v in env.items():  # the same for the in-process Stack
            if k.startswith(("TRAPALERT_", "SCORING_")):
                monkeypatch.setenv(k, v)
        monkeypatch.delenv("DATABASE_URL", raising=False)
        self.stack = Stack(PROJECT_ROOT, state_dir=self.state_dir, settings_file=self.settings)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([str(TRAPALERT), "stack", *args], env=self.env, cwd=PROJECT_ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(TRAPALERT), "stack", *args], env=self.env, cwd=PROJECT_ROOT, text=True,
                              capture_output=True, timeout=timeout)

    def assert_nothing_left(self, held_by_others: tuple[str, ...] = ()) -> None:
        deadline = time.monotonic() + 10
        while marked_processes(self.state_dir) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marked_processes(self.state_dir) == {}
        assert postgres_pid(self.state_dir) is None
        for name in sorted({"blob", "queue", "postgres", "scoring", "host"} - set(held_by_others)):
            assert port_holders(self.ports[name]) == [], name
        assert not (self.state_dir / "stack.json").exists()

    def cleanup(self) -> None:
        """Whatever a failed test left: stop it by pid (only this test's processes)."""
        for pid in marked_processes(self.state_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if postgres_pid(self.state_dir):
            EmbeddedPostgres(self.state_dir / "postgres", self.ports["postgres"]).stop("immediate")


@pytest.fixture
def stack_tmp():
    """A folder outside pytest's tmp root: as root, PostgreSQL runs as the pgserver user and must reach its
    data folder, and every pytest session that starts (other test runs on this machine) resets
    /tmp/pytest-of-root to mode 0700."""
    path = Path(tempfile.mkdtemp(prefix="trapalert-stack-test-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def env(stack_tmp, monkeypatch):
    e = Env(stack_tmp, monkeypatch)
    yield e
    e.cleanup()


def test_a_failure_mid_start_stops_what_that_call_started(env, monkeypatch):
    # the Functions host (the last step) fails to start, after Azurite, PostgreSQL and the scoring service
    real_spawn = Stack._spawn

    def spawn(self, name, cmd, child_env):
        if name == "functions-host":
            cmd = [sys.executable, "-c", "import sys; print('error: injected host failure'); sys.exit(3)"]
        return real_spawn(self, name, cmd, child_env)

    monkeypatch.setattr(Stack, "_spawn", spawn)
    seen: dict[int, str] = {}
    real_wait = Stack._wait_http

    def wait_http(self, *args, **kwargs):  # note what is running just before the host step fails
        seen.update(marked_processes(env.state_dir))
        return real_wait(self, *args, **kwargs)

    monkeypatch.setattr(Stack, "_wait_http", wait_http)
    with pytest.raises(StackError) as err:
        env.stack.up()
    message = str(err.value)
    assert "\n" not in message
    assert err.value.step == "host", message
    assert message.startswith("stack up failed at step 'host': Functions host exited with code 3")
    assert "injected host failure" in message and "stopped what it had started" in message
    assert "Traceback" in err.value.details
    # azurite and scoring had been running (and PostgreSQL: the migrations ran on it)
    assert any("azurite" in c for c in seen.values()) and any("-m scoring" in c for c in seen.values())
    env.assert_nothing_left()


def test_a_port_held_by_another_process_is_named_and_nothing_starts(env):
    listener = subprocess.Popen(
        [sys.executable, "-c", "import socket, sys, time; s = socket.socket(); "
         "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); print('ready', flush=True); time.sleep(120)",
         str(env.ports["scoring"])], stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "ready"
        result = env.cli("up")
        assert result.returncode == 1
        err_lines = result.stderr.strip().splitlines()
        assert len(err_lines) == 1, result.stderr
        line = err_lines[0]
        assert line.startswith("Error: stack up failed at step 'ports': ")
        assert f"port {env.ports['scoring']} (the scoring service) is in use by pid {listener.pid}" in line
        assert "s.bind(" in line  # its command line
        assert "TRAPALERT_SCORING_PORT" in line and "--verbose" in line
        assert "Traceback" not in result.stderr + result.stdout
        env.assert_nothing_left(held_by_others=("scoring",))
        verbose = env.cli("up", "--verbose")
        assert verbose.returncode == 1 and "Traceback" in verbose.stderr
        assert verbose.stderr.strip().splitlines()[-1].startswith("Error: stack up failed at step 'ports'")
    finally:
        listener.kill()
        listener.wait(5)
    env.assert_nothing_left()


def test_what_a_killed_stack_up_left_is_stopped_by_stack_down(env):
    up = env.popen("up")
    try:
        deadline = time.monotonic() + 120
        while not any("-m scoring" in c for c in marked_processes(env.state_dir).values()):
            assert up.poll() is None, up.communicate()
            assert time.monotonic() < deadline, "the scoring service never started"
            time.sleep(0.05)
    finally:
        os.kill(up.pid, signal.SIGKILL)  # the `stack up` process only: what it started lives on
        up.communicate(timeout=10)
    (env.state_dir / "stack.json").unlink(missing_ok=True)  # and it recorded nothing
    orphans = marked_processes(env.state_dir)
    assert any("azurite" in c for c in orphans.values()) and postgres_pid(env.state_dir)
    status = env.stack.status()
    assert status["running"] is False
    assert any(x.startswith("azurite") for x in status["leftovers"])
    assert any(x.startswith("scoring") for x in status["leftovers"])

    result = env.cli("down")
    assert result.returncode == 0, result.stderr
    for name in ("azurite", "scoring", "postgres"):
        assert f"leftover {name} (pid " in result.stdout
    env.assert_nothing_left()
    assert all(not _alive(pid) for pid in orphans)


def test_two_concurrent_stack_up_end_in_one_stack(env):
    first, second = env.popen("up"), env.popen("up")
    try:
        results = [p.communicate(timeout=240) for p in (first, second)]
        codes = [first.returncode, second.returncode]
        assert sorted(codes) == [0, 1], results
        out_ok, _ = results[codes.index(0)]
        _, err_loser = results[codes.index(1)]
        assert "TrapAlert local stack is up" in out_ok
        assert "is in progress" in err_loser and "waiting for it" in err_loser
        assert err_loser.strip().splitlines()[-1].startswith("Error: the stack is already running")
        assert "Traceback" not in err_loser

        status = env.stack.status()
        assert status["running"] is True, status
        assert {n: c["state"] for n, c in status["components"].items()} == {
            "azurite": "running", "postgres": "running", "scoring": "running", "host": "running"}
        assert "leftovers" not in status
        cmds = list(marked_processes(env.state_dir).values())
        # one of each (a process may have helper children; they share its command line's program)
        assert sum("-m scoring" in c for c in cmds) == 1
        assert sum("functions.localhost" in c for c in cmds) == 1
        assert sum("azurite" in c for c in cmds) == 1
    finally:
        for p in (first, second):
            if p.poll() is None:
                p.kill()
        down = env.cli("down")
    assert down.returncode == 0 and down.stdout.strip() == "stopped: host, scoring, azurite, postgres"
    env.assert_nothing_left()


def test_a_held_lock_makes_the_other_call_say_which_one_is_in_progress(env):
    with env.stack._locked("up", lambda _m: None, 0):
        with pytest.raises(StackError) as err:
            Stack(PROJECT_ROOT, state_dir=env.state_dir, settings_file=env.settings).down(lock_wait_s=0)
        assert f"another `trapalert stack up` (pid {os.getpid()}) is in progress" in str(err.value)
        assert env.stack.lock_holder()["pid"] == os.getpid()
        waited: list[str] = []
        t = time.monotonic()
        with pytest.raises(StackError, match="after waiting 1 s"):
            Stack(PROJECT_ROOT, state_dir=env.state_dir, settings_file=env.settings).down(
                echo=waited.append, lock_wait_s=1)
        assert time.monotonic() - t >= 1
        assert len(waited) == 1 and "waiting for it (up to 1 s)" in waited[0]
    assert env.stack.lock_holder() is None
    assert env.stack.down(lock_wait_s=0) == []  # free again
