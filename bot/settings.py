"""Settings from the environment and the top-level keys of chatops.yaml, validated once at start.

Every problem becomes a ConfigError whose message is ONE readable line naming the
variable and how to fix it; app.py prints it and exits 2. No module reads the
environment except through `load_settings`.

The structured sections of chatops.yaml (presets, alerts, playbooks, …) are kept here as
the file has them, unread: bot/all_sections.py parses each into its typed object. This
module knows no checks and no commands.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Literal, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import yaml

from bot.errors import ConfigError
from bot.sections import DEFAULT_FILE, Where, key, keys, number, read, text, unknown_key

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
IN_CLUSTER_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

Mode = Literal["serve", "cli"]


@dataclass(frozen=True)
class Settings:
    # Slack
    slack_bot_token: str = ""
    slack_signing_secret: str = ""
    slack_app_token: str = ""
    slack_api_url: str = DEFAULT_SLACK_API_URL
    command: str = "/ops"
    # Backends; an empty value means "not configured", which is not an error.
    kubeconfig: str = ""
    kubernetes_in_cluster: bool = False
    prometheus_url: str = ""
    alertmanager_url: str = ""
    alertmanager_webhook_token: str = ""
    elasticsearch_url: str = ""
    elasticsearch_username: str = ""
    elasticsearch_password: str = ""
    elasticsearch_api_key: str = ""
    grafana_url: str = ""
    kibana_url: str = ""
    aws_region: str = ""
    aws_endpoint_url: str = ""
    target_group_arn: str = ""  # the runbook's $TARGET_GROUP_ARN, for `elb`
    database_url: str = ""
    # Paging: PagerDuty's Events API v2 (an integration's routing key; never shown, not even in a repr)
    pagerduty_routing_key: str = field(default="", repr=False)
    pagerduty_events_url: str = DEFAULT_PAGERDUTY_EVENTS_URL
    # The bot's own state and process
    state_url: str = "sqlite:///chatops-state.db"
    port: int = 3000
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    # Structured settings from chatops.yaml
    default_namespace: str = "default"
    diagnostic_timeout: float = 8.0
    cache_ttl: float = 5.0
    shutdown_grace_seconds: float = 20.0
    config_file: str = ""
    # The sections of chatops.yaml (SECTIONS) as the file has them; bot/all_sections.py
    # parses them (load_sections) into typed objects.
    sections: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def config_name(self) -> str:
        """The config file as the user named it, for messages (`chatops.yaml` when none was read)."""
        return self.config_file or DEFAULT_FILE

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    @property
    def kubernetes_configured(self) -> bool:
        return bool(self.kubeconfig) or self.kubernetes_in_cluster

    @property
    def aws_configured(self) -> bool:
        return bool(self.aws_region)

    @property
    def pagerduty_configured(self) -> bool:
        return bool(self.pagerduty_routing_key)

    def secrets(self) -> tuple[str, ...]:
        """Values that must never be shown in Slack or the logs."""
        return tuple(
            s
            for s in (
                self.slack_bot_token,
                self.slack_signing_secret,
                self.slack_app_token,
                self.alertmanager_webhook_token,
                self.elasticsearch_password,
                self.elasticsearch_api_key,
                self.pagerduty_routing_key,
                *database_passwords(self.database_url),
            )
            if s
        )


# The sections of chatops.yaml, kept raw in Settings.sections for bot/all_sections.py.
SECTIONS = ("presets", "slo", "elasticsearch", "dependencies", "aws", "playbooks", "playbook_defaults",
            "alerts", "delivery", "actions", "policy", "escalation")


def load_settings(env: Mapping[str, str] | None = None, *, mode: Mode = "serve") -> Settings:
    """Read and validate everything. Raises ConfigError with a one-line message."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}

    config_file = env.get("CHATOPS_CONFIG", "")
    if config_file or Path("chatops.yaml").is_file():
        path = config_file or "chatops.yaml"
        values.update(_read_yaml(path))
        values["config_file"] = path

    def get(name: str) -> str:
        return env.get(name, "").strip()

    values.update(_slack_values(get, mode, values.get("command", "/ops")))
    values.update(_backend_values(get, env))
    values.update(_process_values(get))
    return Settings(**values)


def _slack_values(get: Callable[[str], str], mode: Mode, command: str) -> dict[str, Any]:
    """The Slack variables; `command` is chatops.yaml's (SLACK_COMMAND wins)."""
    values: dict[str, Any] = {}
    values["slack_bot_token"] = get("SLACK_BOT_TOKEN")
    values["slack_signing_secret"] = get("SLACK_SIGNING_SECRET")
    values["slack_app_token"] = get("SLACK_APP_TOKEN")
    if mode == "serve":
        _check_slack(values)

    if get("SLACK_API_URL"):
        url = _http_url("SLACK_API_URL", get("SLACK_API_URL"))
        values["slack_api_url"] = url + "/"
    if get("SLACK_COMMAND"):
        values["command"] = command = get("SLACK_COMMAND")
    if not command.startswith("/") or " " in command or len(command) < 2:
        raise ConfigError(f"command name {command!r} is not a slash command: use a name like /ops")
    return values


def _backend_values(get: Callable[[str], str], env: Mapping[str, str]) -> dict[str, Any]:
    """Where each backend is and how to log in; what is not set is not configured."""
    values: dict[str, Any] = {}
    values["kubeconfig"] = _kubeconfig(get("KUBECONFIG"))
    values["kubernetes_in_cluster"] = not values["kubeconfig"] and _in_cluster(env)
    for name in ("PROMETHEUS_URL", "ALERTMANAGER_URL", "ELASTICSEARCH_URL", "GRAFANA_URL", "KIBANA_URL",
                 "AWS_ENDPOINT_URL"):
        if get(name):
            values[name.lower()] = _http_url(name, get(name))
    values["alertmanager_webhook_token"] = get("ALERTMANAGER_WEBHOOK_TOKEN")
    values["elasticsearch_username"] = get("ELASTICSEARCH_USERNAME")
    values["elasticsearch_password"] = get("ELASTICSEARCH_PASSWORD")
    values["elasticsearch_api_key"] = get("ELASTICSEARCH_API_KEY")
    values["aws_region"] = get("AWS_REGION") or get("AWS_DEFAULT_REGION")
    values["target_group_arn"] = get("TARGET_GROUP_ARN")
    if get("DATABASE_URL"):
        values["database_url"] = _database_url(get("DATABASE_URL"))
    values.update(_pagerduty_values(get))
    return values


def _pagerduty_values(get: Callable[[str], str]) -> dict[str, Any]:
    """PagerDuty's routing key (a secret: never quoted back) and Events API URL."""
    values: dict[str, Any] = {}
    key = get("PAGERDUTY_ROUTING_KEY")
    if key and any(c.isspace() or not c.isprintable() for c in key):
        raise ConfigError("PAGERDUTY_ROUTING_KEY has spaces or control characters in it: "
                          "use the integration key of an Events API v2 integration, as PagerDuty shows it")
    values["pagerduty_routing_key"] = key
    if get("PAGERDUTY_EVENTS_URL"):
        values["pagerduty_events_url"] = _http_url("PAGERDUTY_EVENTS_URL", get("PAGERDUTY_EVENTS_URL"))
    return values


def _process_values(get: Callable[[str], str]) -> dict[str, Any]:
    """The bot's own state store, port and logs."""
    values: dict[str, Any] = {}
    if get("STATE_URL"):
        values["state_url"] = _state_url(get("STATE_URL"))
    if get("PORT"):
        values["port"] = _port(get("PORT"))
    if get("LOG_LEVEL"):
        level = get("LOG_LEVEL").upper()
        if level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL={get('LOG_LEVEL')!r} is not one of {', '.join(LOG_LEVELS)}")
        values["log_level"] = level
    if get("LOG_FORMAT"):
        fmt = get("LOG_FORMAT").lower()
        if fmt not in ("text", "json"):
            raise ConfigError(f"LOG_FORMAT={get('LOG_FORMAT')!r} must be text or json")
        values["log_format"] = fmt
    return values


def _check_slack(values: dict[str, Any]) -> None:
    missing = []
    if not values["slack_bot_token"]:
        missing.append("SLACK_BOT_TOKEN")
    if not values["slack_app_token"] and not values["slack_signing_secret"]:
        missing.append("SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN for Socket Mode)")
    if missing:
        raise ConfigError(
            f"missing {' and '.join(missing)}: create the app from manifests/slack-app.yaml, install it, "
            "and export its Bot User OAuth Token and Signing Secret (see README, Configuration)"
        )
    if not values["slack_bot_token"].startswith("xoxb-"):
        raise ConfigError("SLACK_BOT_TOKEN must be the Bot User OAuth Token, which starts with xoxb-")
    if values["slack_app_token"] and not values["slack_app_token"].startswith("xapp-"):
        raise ConfigError(
            "SLACK_APP_TOKEN must be an app-level token with connections:write, which starts with xapp-"
        )


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"CHATOPS_CONFIG={path!r}: no such file") from None
    except OSError as e:
        raise ConfigError(f"CHATOPS_CONFIG={path!r}: cannot read it ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    top = Where(path)
    known = [*keys(_FileKeys), *SECTIONS]
    for name in data:
        if name not in known:
            raise unknown_key(top, name, known)
    given = {name: value for name, value in data.items() if name not in SECTIONS}
    file_keys = read(_FileKeys, given, top)
    out: dict[str, Any] = {name: getattr(file_keys, name) for name in given}
    out["sections"] = MappingProxyType({name: value for name, value in data.items() if name in SECTIONS})
    return out


def _url(value: Any, where: Where) -> str:
    url = text(value, where)
    try:
        return _http_url(where.path, url)
    except ConfigError:
        raise where.wrong("must be an http(s) URL such as http://grafana:3000", _safe(url)) from None


@dataclass(frozen=True)
class _FileKeys:
    """The top-level keys of chatops.yaml that are not sections; defaults are Settings'."""

    default_namespace: str = key(text, Settings.default_namespace)
    diagnostic_timeout: float = key(number(above=0, at_most=120), Settings.diagnostic_timeout)
    cache_ttl: float = key(number(at_least=0), Settings.cache_ttl)
    shutdown_grace_seconds: float = key(number(at_least=0), Settings.shutdown_grace_seconds)
    command: str = key(text, Settings.command)
    grafana_url: str = key(_url, Settings.grafana_url)
    kibana_url: str = key(_url, Settings.kibana_url)


def _http_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}={_safe(value)!r} is not an http(s) URL: use e.g. http://prometheus:9090")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ConfigError(f"{name}={_safe(value)!r} has an invalid port") from None
    return value.rstrip("/")


def _database_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.netloc.count("@") > 1:  # said without the URL: the password is around the @s
        raise ConfigError(
            f"DATABASE_URL (database {database_location(value)}) has more than one @ before the host: "
            "write an @ in the user name or password as %40"
        )
    if parts.scheme not in ("postgres", "postgresql") or not (parts.hostname or parts.query):
        raise ConfigError(
            f"DATABASE_URL={_safe(value)!r} is not a PostgreSQL URL: use postgresql://user@host:5432/dbname"
        )
    return value


# The connection parameters libpq reads a password from: `password` and `sslpassword` (the
# client key's passphrase), in a URL's query string or a `key=value` connection string.
_PASSWORD_KEYS = ("password", "sslpassword")
_PASSWORD_PARAMETER = re.compile(r"(?i)(^|[?&;\s])((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)")


def database_location(url: str) -> str:
    """Where a DATABASE_URL points, as it may be shown anywhere: host:port/database, nothing else
    (no user, no password, no other parameter)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    host = parts.netloc.rpartition("@")[2]
    if not host:
        host = query.get("host", "localhost") + (f":{query['port']}" if query.get("port") else "")
    database = unquote(parts.path.lstrip("/")) or query.get("dbname", "")
    return f"{unquote(host)}/{database}"


def database_passwords(url: str) -> tuple[str, ...]:
    """Every password a DATABASE_URL carries (as written and decoded), for the redaction list: the
    URL's own (`user:password@`, taken up to the last @) and `password=` / `sslpassword=`."""
    if not url:
        return ()
    parts = urlsplit(url)
    found = []
    userinfo = parts.netloc.rpartition("@")[0]
    if ":" in userinfo:
        found.append(userinfo.partition(":")[2])
    found += [value for name, value in parse_qsl(parts.query, keep_blank_values=True) if name in _PASSWORD_KEYS]
    found += [m.group(3).strip("'") for m in _PASSWORD_PARAMETER.finditer(parts.query)]
    return tuple(dict.fromkeys(p for value in found for p in (value, unquote(value)) if p))


def _state_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme == "sqlite":
        if not value.startswith("sqlite:///") or len(value) <= len("sqlite:///"):
            raise ConfigError(
                f"STATE_URL={value!r}: use sqlite:///relative.db or sqlite:////absolute/path.db"
            )
        return value
    if parts.scheme in ("redis", "rediss"):
        if not parts.hostname:
            raise ConfigError(f"STATE_URL={_safe(value)!r}: a redis URL needs a host, e.g. redis://redis:6379/0")
        return value
    raise ConfigError(f"STATE_URL={_safe(value)!r}: must start with sqlite:/// or redis://")


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ConfigError(f"PORT={value!r} is not a number: use e.g. PORT=3000") from None
    if not 0 <= port < 65536:  # 0 asks the OS for a free port (tests)
        raise ConfigError(f"PORT={value!r} is out of range 0-65535")
    return port


def _kubeconfig(value: str) -> str:
    if not value:
        return ""
    # kubectl accepts a list; the first existing file is the one we load.
    for candidate in value.split(os.pathsep):
        if candidate and Path(candidate).expanduser().is_file():
            return str(Path(candidate).expanduser())
    raise ConfigError(f"KUBECONFIG={value!r}: no such file (unset it to run without Kubernetes)")


def _in_cluster(env: Mapping[str, str]) -> bool:
    return bool(env.get("KUBERNETES_SERVICE_HOST")) and Path(IN_CLUSTER_TOKEN).is_file()


def _safe(url: str) -> str:
    """A URL as it may be shown: without its password, whether in the user part (up to the last
    @, so an unencoded @ in the password hides all of it) or a `password=` parameter."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    netloc = f"{userinfo.partition(':')[0]}:***@{host}" if ":" in userinfo else parts.netloc
    query = _PASSWORD_PARAMETER.sub(r"\1\2***", parts.query)
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def safe_url(url: str) -> str:
    return _safe(url)


__all__ = ["SECTIONS", "ConfigError", "Settings", "database_location", "database_passwords", "load_settings",
           "safe_url"]
