"""A real Alertmanager (Debian's prometheus-alertmanager 0.25), clustering off."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.servers.process import ServerProcess, http_ok, start_on_free_port

# Everything goes to a receiver with no integrations: alerts are stored and listed by the API
# but never sent anywhere. group_wait 0s so a notifying config in a test does not wait 30 s.
NULL_CONFIG = """\
route:
  receiver: "null"
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
"""


def _request(url: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    """POST /api/v2/alerts. Each alert needs at least `labels`; Alertmanager fills startsAt.

    Raises urllib.error.HTTPError (with Alertmanager's explanation in the body) on a 400.
    """
    _request(f"{url.rstrip('/')}/api/v2/alerts", "POST", alerts)


@dataclass
class AlertmanagerServer:
    url: str
    port: int
    process: ServerProcess
    config_path: Path

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        post_alerts(self.url, alerts)

    def alerts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = _request(f"{self.url}/api/v2/alerts")
        return result

    def silences(self) -> list[dict[str, Any]]:
        """GET /api/v2/silences: every silence, expired ones included."""
        result: list[dict[str, Any]] = _request(f"{self.url}/api/v2/silences")
        return result

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = _request(f"{self.url}/api/v2/status")
        return result

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> AlertmanagerServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_alertmanager(binary: str, workdir: Path, config_yaml: str = NULL_CONFIG) -> AlertmanagerServer:
    config_path = workdir / "alertmanager.yml"
    config_path.write_text(config_yaml)

    def argv(port: int) -> list[str]:
        return [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            # Empty value disables the gossip cluster: no second port, no peers to wait for.
            "--cluster.listen-address=",
            f"--web.external-url=http://127.0.0.1:{port}",
        ]

    process, port = start_on_free_port(
        "alertmanager", argv, lambda port: http_ok(f"http://127.0.0.1:{port}/-/ready"), workdir=workdir
    )
    return AlertmanagerServer(f"http://127.0.0.1:{port}", port, process, config_path)
