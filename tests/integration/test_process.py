"""The bot as a process: `python app.py ops …` in the terminal, and a graceful SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.plugins.kube import seed_checkout_prod, write_kubeconfig
from tests.slack_requests import send_slash_command

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _env(extra: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "KUBE", "PROMETHEUS", "CHATOPS"))}
    return {**base, **extra}


async def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "app.py"), *args, env=_env(env), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_terminal_pods_prints_the_same_facts_and_exits_non_zero_when_unhealthy(kube):
    seed_checkout_prod(kube)
    code, out, err = await _run(["ops", "pods", "checkout", "-n", "prod"], {"KUBECONFIG": kube.kubeconfig_path})
    assert code == 2, (out, err)  # critical
    assert "Pods · checkout (prod)" in out
    assert "CrashLoopBackOff" in out and "OOMKilled" in out
    assert "checkout-" in out and "payments" not in out
    assert "Desired: 3" in out


async def test_terminal_pods_exits_zero_when_all_pods_are_ready(kube):
    from tests.plugins.kube import running_ready

    kube.seed_deployment("web", "prod", replicas=2, pods=[running_ready(name="a"), running_ready(name="b")])
    code, out, err = await _run(["ops", "pods", "web", "-n", "prod"], {"KUBECONFIG": kube.kubeconfig_path})
    assert code == 0, (out, err)
    assert "2/2" in out


def _bot_env(fake_slack, signing_secret: str, port: int, tmp_path) -> dict[str, str]:
    return {"STATE_URL": f"sqlite:///{tmp_path}/state.db", "SLACK_BOT_TOKEN": fake_slack.bot_token,
            "SLACK_SIGNING_SECRET": signing_secret, "SLACK_API_URL": fake_slack.api_url, "PORT": str(port)}


async def _serve(env: dict[str, str]) -> asyncio.subprocess.Process:
    """`python app.py` with `env`: the bot as it runs in production."""
    return await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "app.py"), env=_env(env), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def test_sigterm_stops_the_server_and_exits_0(fake_slack, signing_secret, unused_tcp_port, tmp_path):
    proc = await _serve(_bot_env(fake_slack, signing_secret, unused_tcp_port, tmp_path))
    try:
        await _wait_healthy(unused_tcp_port)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0, err.decode()
        assert "stopped" in err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0)


@pytest.fixture
def slow_kubernetes_called() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture
async def slow_kubernetes(tmp_path, slow_kubernetes_called):
    """An API server that takes 1.5 s to say the deployment doesn't exist."""
    async def slow(request: web.Request) -> web.Response:
        slow_kubernetes_called.set()
        await asyncio.sleep(1.5)
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "reason": "NotFound", "code": 404, "message": "not found"}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield write_kubeconfig(tmp_path / "slow", f"http://127.0.0.1:{port}")
    await runner.cleanup()


async def test_stop_lets_the_command_in_flight_finish_and_turns_new_ones_away(
    start_bot, bot_env, http, fake_slack, signing_secret, slow_kubernetes, slow_kubernetes_called
):
    bot = await start_bot({**bot_env, "KUBECONFIG": str(slow_kubernetes)})
    url = f"http://127.0.0.1:{bot.port}/slack/events"
    await send_slash_command(http, url, signing_secret, text="pods checkout -n prod",
                             response_url=fake_slack.response_url())
    # The command's job is running once the Kubernetes call it makes has reached the slow server.
    await asyncio.wait_for(slow_kubernetes_called.wait(), 5)
    assert bot.worker.running == 1
    stopping = asyncio.create_task(bot.stop())
    await asyncio.wait_for(_until(lambda: bot.runtime.draining), 5)
    assert not stopping.done()
    late = await send_slash_command(http, url, signing_secret, text="pods checkout -n prod")
    assert "restarting" in json.dumps(late.json)
    await asyncio.wait_for(stopping, 10)
    # The command that was running when the stop began still posted its answer.
    (message,) = fake_slack.messages()
    assert "not found" in message.text


class TricklingServer:
    """An HTTP server that answers the headers, then one byte every 2 s, forever: each read
    gets a byte before its timeout, so a client with per-read timeouts waits indefinitely."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.requested.set()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n")
            while True:
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(2)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


@pytest.fixture
async def trickling():
    server = TricklingServer()
    url = await server.start()
    yield server, url
    server.close()


async def _wait_healthy(port: int) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(400):
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    pytest.fail("the bot never answered /healthz")


async def test_sigterm_exits_within_the_grace_even_with_a_call_stuck_on_a_trickling_backend(
    fake_slack, signing_secret, unused_tcp_port, tmp_path, trickling
):
    server, url = trickling
    grace = 1
    config = tmp_path / "chatops.yaml"
    config.write_text(f"shutdown_grace_seconds: {grace}\n")
    env = {
        "STATE_URL": f"sqlite:///{tmp_path}/state.db",
        "SLACK_BOT_TOKEN": fake_slack.bot_token,
        "SLACK_SIGNING_SECRET": signing_secret,
        "SLACK_API_URL": fake_slack.api_url,
        "PORT": str(unused_tcp_port),
        "PROMETHEUS_URL": url,
        "CHATOPS_CONFIG": str(config),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "app.py"), env=_env(env), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await _wait_healthy(unused_tcp_port)
        async with aiohttp.ClientSession() as http:
            await send_slash_command(http, f"http://127.0.0.1:{unused_tcp_port}/slack/events", signing_secret,
                                     text="metric error-rate", response_url=fake_slack.response_url())
        # Barrier: a blocking-pool thread is now reading the trickling answer.
        await asyncio.wait_for(server.requested.wait(), 10)
        proc.send_signal(signal.SIGTERM)
        signalled = asyncio.get_running_loop().time()
        try:
            _, err = await asyncio.wait_for(proc.communicate(), grace + 5)
        except asyncio.TimeoutError:
            pytest.fail(f"the process was still alive {grace + 5} s after SIGTERM")
        assert asyncio.get_running_loop().time() - signalled < grace + 5
        assert proc.returncode == 0, err.decode()
        assert "stopped" in err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_leftover_non_daemon_thread_does_not_hold_up_the_exit_past_the_deadline():
    script = (
        "import logging, sys, threading, time\n"
        "import app\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "threading.Thread(target=time.sleep, args=(60,), name='stuck-library-thread').start()\n"
        "app._exit_if_held_up(0.5)\n"
        "sys.exit(0)\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, env=_env({}), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert "exit held up" in err.decode() and "stuck-library-thread" in err.decode()


async def test_sigterm_while_the_bot_is_still_starting_exits_cleanly(fake_slack, signing_secret, unused_tcp_port,
                                                                     tmp_path, kube):
    # A rollout may stop a pod that is still warming up (loading the Kubernetes client's classes):
    # before, the signal arrived before its handler existed and killed the process (-15).
    proc = await _serve({**_bot_env(fake_slack, signing_secret, unused_tcp_port, tmp_path),
                         "KUBECONFIG": kube.kubeconfig_path})
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(30):
            while True:  # until /readyz says it is starting: the warm-up is under way
                try:
                    async with http.get(f"http://127.0.0.1:{unused_tcp_port}/readyz") as answer:
                        body = await answer.json()
                        assert answer.status == 503 and body.get("starting"), body  # caught while starting
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 40)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert "stopped" in err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
