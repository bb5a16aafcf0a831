"""Start a server binary on a free loopback port, wait until it answers, stop it for good.

Shared by the Prometheus, Alertmanager, Redis and PostgreSQL helpers so that each of them only
says how to build its command line and how to tell it is ready.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A port that was free a moment ago. Racy by nature: start_on_free_port retries on a clash."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when GET url answers 200 (readiness probes such as /-/ready)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.HTTPError):
        return False


class ServerProcess:
    """A child process whose combined stdout/stderr goes to a log file we can quote on failure."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        log_path: Path,
        cwd: Path,
        env: dict[str, str] | None = None,
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.stop_signal = stop_signal
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own process group: a Ctrl-C in the terminal must not hit the server before
                # our teardown does, and the server must not outlive a crashed test run.
                start_new_session=True,
                **as_user(user),
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no output captured)"
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Ask politely, then kill; always reap the child so no zombie or port is left behind."""
        if self.popen.poll() is None:
            self.popen.send_signal(self.stop_signal)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout)

    def failure(self, what: str) -> RuntimeError:
        return RuntimeError(
            f"{self.name}: {what}\ncommand: {' '.join(self.argv)}\n"
            f"--- last output ({self.log_path}) ---\n{self.tail()}"
        )


def as_user(user: str | None) -> dict[str, Any]:
    # PostgreSQL refuses to run as root, so as root we drop to its system user. Clearing the
    # supplementary groups keeps root's groups from leaking into the child.
    if user is None:
        return {}
    return {"user": user, "group": user, "extra_groups": []}


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    process: ServerProcess | None = None,
    interval: float = 0.05,
) -> T:
    """Poll `check` until it returns something truthy; fail fast if `process` dies meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if process is not None and not process.running():
            raise process.failure(f"exited with code {process.popen.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            if process is not None:
                raise process.failure(f"timed out after {timeout:.0f}s waiting for {what}")
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def start_on_free_port(
    name: str,
    build_argv: Callable[[int], list[str]],
    is_ready: Callable[[int], bool],
    *,
    workdir: Path,
    timeout: float = STARTUP_TIMEOUT,
    attempts: int = 3,
    **process_options: Any,
) -> tuple[ServerProcess, int]:
    """Start `name` on a fresh port and wait for `is_ready(port)`.

    free_port() can lose a race with another process grabbing the same port; when the server
    dies complaining about that, try again on another port instead of failing the test.
    """
    for attempt in range(1, attempts + 1):
        port = free_port()
        process = ServerProcess(
            name, build_argv(port), log_path=workdir / f"{name}-{port}.log", cwd=workdir, **process_options
        )
        try:
            what = f"{name} on port {port}"
            wait_until(partial(is_ready, port), timeout=timeout, what=what, process=process)
        except BaseException as error:  # also Ctrl-C: never leave a half-started server behind
            process.stop()
            clash = "address already in use" in process.tail().lower()
            if isinstance(error, RuntimeError) and clash and attempt < attempts:
                continue
            raise
        return process, port
    raise AssertionError("unreachable")


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment minus variables that would redirect a client (PGHOST, PGPORT...)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(extra)
    return env
