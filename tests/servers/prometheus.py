"""A real Prometheus (Debian's 2.42) with a config written from Python values.

Timing fact worth knowing: even with static targets and a 1 s scrape interval, the first scrape
happens about 5 s after start, because Prometheus' discovery manager batches target updates on
a 5 s tick. Poll with `wait_for` rather than sleeping.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.servers.process import ServerProcess, http_ok, start_on_free_port, wait_until

Series = list[dict[str, Any]]


@dataclass
class PrometheusConfig:
    scrape_configs: list[dict[str, Any]] = field(default_factory=list)
    rule_files: dict[str, str] = field(default_factory=dict)  # file name -> rules YAML text
    scrape_interval: str = "1s"
    evaluation_interval: str = "1s"
    alertmanager_url: str | None = None

    def write(self, workdir: Path) -> Path:
        rules_dir = workdir / "rules"
        rules_dir.mkdir(exist_ok=True)
        for old in rules_dir.iterdir():  # a reload must drop rules that are no longer configured
            old.unlink()
        rule_paths = []
        for name, text in self.rule_files.items():
            path = rules_dir / (name if name.endswith((".yml", ".yaml")) else f"{name}.yml")
            path.write_text(text)
            rule_paths.append(str(path))
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": rule_paths,
            "scrape_configs": self.scrape_configs,
        }
        if self.alertmanager_url:
            am = urllib.parse.urlsplit(self.alertmanager_url)
            config["alerting"] = {
                "alertmanagers": [
                    {
                        "scheme": am.scheme or "http",
                        "path_prefix": am.path or "/",
                        "static_configs": [{"targets": [am.netloc]}],
                    }
                ]
            }
        path = workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path


@dataclass
class PrometheusServer:
    url: str
    port: int
    process: ServerProcess
    workdir: Path
    config: PrometheusConfig

    def query(self, expr: str) -> Series:
        """Instant query; returns `data.result` (a vector's list of {metric, value})."""
        qs = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{qs}", timeout=5) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {body}")
        result: Series = body["data"]["result"]
        return result

    def wait_for(
        self, expr: str, predicate: Callable[[Series], bool] = bool, *, timeout: float = 20.0
    ) -> Series:
        """Poll `expr` until `predicate(result)` holds (default: any series at all)."""
        last: Series = []

        def check() -> Series | None:
            nonlocal last
            last = self.query(expr)
            return last if predicate(last) else None

        try:
            return wait_until(check, timeout=timeout, what=f"Prometheus query {expr!r}", interval=0.2)
        except TimeoutError as error:
            raise TimeoutError(f"{error}; last result: {last}") from None

    def reconfigure(self, **changes: Any) -> None:
        """Change any PrometheusConfig field and hot-reload (needs --web.enable-lifecycle)."""
        for name, value in changes.items():
            setattr(self.config, name, value)
        self.config.write(self.workdir)
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise RuntimeError(f"reload failed: {response.status} {response.read()!r}")

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_prometheus(binary: str, workdir: Path, config: PrometheusConfig) -> PrometheusServer:
    config_path = config.write(workdir)

    def argv(port: int) -> list[str]:
        return [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            "--storage.tsdb.retention.time=1h",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url=http://127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ]

    process, port = start_on_free_port(
        "prometheus", argv, lambda port: http_ok(f"http://127.0.0.1:{port}/-/ready"), workdir=workdir
    )
    return PrometheusServer(f"http://127.0.0.1:{port}", port, process, workdir, config)
