"""moto in server mode: real HTTP on loopback, reached through boto3's standard AWS_ENDPOINT_URL.

ThreadedMotoServer runs in this process, so a session-wide server costs one import and no
subprocess; its state is shared by all tests, hence `reset()` (POST /moto-api/reset) per test.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from typing import Any

REGION = "us-west-2"


@dataclass
class MotoServer:
    url: str
    port: int
    env: dict[str, str]
    _server: Any

    def reset(self) -> None:
        """Forget every resource created so far, in every service and region."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        self._server.stop()


def start_moto() -> MotoServer:
    # Imported here: moto[server] is a test extra, and a missing one must skip, not break collection.
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # port 0: no race
    server.start()
    _, port = server.get_host_and_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }
    return MotoServer(url, port, env, server)
