"""A real redis-server, memory only, spoken to with raw RESP so the tests need no client library."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from tests.servers.process import ServerProcess, start_on_free_port


def _encode(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        raw = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


def redis_command(port: int, *args: str, timeout: float = 2.0) -> bytes:
    """Send one command, return the raw first reply line (e.g. b'+PONG'). Enough for probes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(_encode(*args))
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.split(b"\r\n", 1)[0]


def _answers_ping(port: int) -> bool:
    try:
        # While loading, Redis answers -LOADING; only +PONG means ready.
        return redis_command(port, "PING", timeout=0.5) == b"+PONG"
    except OSError:
        return False


@dataclass
class RedisServer:
    url: str
    host: str
    port: int
    process: ServerProcess

    def command(self, *args: str) -> bytes:
        return redis_command(self.port, *args)

    def stop(self) -> None:
        self.process.stop()


def start_redis(binary: str, workdir: Path) -> RedisServer:
    def argv(port: int) -> list[str]:
        return [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            # No RDB snapshots, no AOF: nothing is written to disk, shutdown is instant.
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--daemonize", "no",
        ]  # fmt: skip

    process, port = start_on_free_port("redis-server", argv, _answers_ping, workdir=workdir)
    return RedisServer(f"redis://127.0.0.1:{port}/0", "127.0.0.1", port, process)
