import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
SLACK = {"SLACK_BOT_TOKEN": "xoxb-1-2-abc", "SLACK_SIGNING_SECRET": "s3cr3t-signing"}


def test_missing_slack_variables_name_each_one_on_one_line():
    with pytest.raises(ConfigError) as e:
        load_settings({}, mode="serve")
    message = str(e.value)
    assert "SLACK_BOT_TOKEN" in message and "SLACK_SIGNING_SECRET" in message
    assert "\n" not in message


def test_socket_mode_needs_no_signing_secret():
    settings = load_settings({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, mode="serve")
    assert settings.socket_mode


def test_terminal_mode_needs_no_slack_at_all():
    settings = load_settings({}, mode="cli")
    assert not settings.slack_bot_token


@pytest.mark.parametrize(
    "env, named",
    [
        ({"SLACK_BOT_TOKEN": "xapp-wrong-kind"}, "SLACK_BOT_TOKEN"),
        ({"SLACK_APP_TOKEN": "xoxb-wrong-kind"}, "SLACK_APP_TOKEN"),
        ({"PORT": "http"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"PROMETHEUS_URL": "prometheus:9090"}, "PROMETHEUS_URL"),
        ({"ALERTMANAGER_URL": "http://am:notaport"}, "ALERTMANAGER_URL"),
        ({"STATE_URL": "mysql://x"}, "STATE_URL"),
        ({"STATE_URL": "sqlite://relative.db"}, "STATE_URL"),
        ({"DATABASE_URL": "mysql://db/app"}, "DATABASE_URL"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"KUBECONFIG": "/nonexistent/kubeconfig"}, "KUBECONFIG"),
    ],
)
def test_malformed_values_are_named_in_one_line(env, named):
    with pytest.raises(ConfigError) as e:
        load_settings({**SLACK, **env}, mode="serve")
    assert named in str(e.value)
    assert "\n" not in str(e.value)


def test_database_password_is_not_repeated_in_the_error():
    with pytest.raises(ConfigError) as e:
        load_settings({**SLACK, "DATABASE_URL": "mysql://u:hunter22@db/app"}, mode="serve")
    assert "hunter22" not in str(e.value)


def test_valid_values_are_read():
    settings = load_settings(
        {
            **SLACK,
            "SLACK_API_URL": "http://127.0.0.1:9999/api",
            "PROMETHEUS_URL": "http://prom:9090/",
            "STATE_URL": "redis://redis:6379/0",
            "PORT": "8080",
            "LOG_FORMAT": "JSON",
        },
        mode="serve",
    )
    assert settings.slack_api_url == "http://127.0.0.1:9999/api/"
    assert settings.prometheus_url == "http://prom:9090"
    assert settings.port == 8080 and settings.log_format == "json"
    assert settings.state_url == "redis://redis:6379/0"


def test_yaml_file_sets_structured_settings(tmp_path):
    path = tmp_path / "chatops.yaml"
    path.write_text("default_namespace: claude-deployment-prod\ndiagnostic_timeout: 5\n")
    settings = load_settings({**SLACK, "CHATOPS_CONFIG": str(path)}, mode="serve")
    assert settings.default_namespace == "claude-deployment-prod"
    assert settings.diagnostic_timeout == 5.0


def test_yaml_typo_is_reported_with_the_closest_key(tmp_path):
    path = tmp_path / "chatops.yaml"
    path.write_text("default_namespce: prod\n")
    with pytest.raises(ConfigError) as e:
        load_settings({**SLACK, "CHATOPS_CONFIG": str(path)}, mode="serve")
    assert str(e.value) == f"{path}: default_namespce: unknown key (did you mean default_namespace?)"


def test_an_unknown_top_level_key_without_a_close_one_lists_the_keys_and_sections(tmp_path):
    path = tmp_path / "chatops.yaml"
    path.write_text("frobnicate: 1\n")
    with pytest.raises(ConfigError) as e:
        load_settings({**SLACK, "CHATOPS_CONFIG": str(path)}, mode="serve")
    assert str(e.value).startswith(f"{path}: frobnicate: unknown key (known: default_namespace, diagnostic_timeout,")
    assert str(e.value).endswith(", alerts, delivery, actions, policy, escalation)")


@pytest.mark.parametrize("text, message", [
    ("diagnostic_timeout: '5'\n", "diagnostic_timeout: must be a number more than 0 and at most 120, not '5'"),
    ("diagnostic_timeout: 500\n", "diagnostic_timeout: must be a number more than 0 and at most 120, not 500"),
    ("cache_ttl: true\n", "cache_ttl: must be a number of at least 0, not True"),
    ("grafana_url: grafana:3000\n",
     "grafana_url: must be an http(s) URL such as http://grafana:3000, not 'grafana:3000'"),
])
def test_a_wrong_top_level_value_says_what_it_must_be(tmp_path, text, message):
    path = tmp_path / "chatops.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_settings({**SLACK, "CHATOPS_CONFIG": str(path)}, mode="serve")
    assert str(e.value) == f"{path}: {message}"


def test_settings_keep_the_sections_raw_for_bot_sections_to_parse(tmp_path):
    path = tmp_path / "chatops.yaml"
    path.write_text("alerts: {cooldown_minutes: 5}\ngrafana_url: http://grafana:3000/\n")
    settings = load_settings({"CHATOPS_CONFIG": str(path)}, mode="cli")
    assert settings.sections == {"alerts": {"cooldown_minutes": 5}}
    assert settings.grafana_url == "http://grafana:3000" and settings.config_name == str(path)


def test_broken_yaml_names_the_line(tmp_path):
    path = tmp_path / "chatops.yaml"
    path.write_text("default_namespace: prod\n  bad: [\n")
    with pytest.raises(ConfigError, match="line"):
        load_settings({**SLACK, "CHATOPS_CONFIG": str(path)}, mode="serve")


def _run_app(args, env, cwd):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "KUBE", "PROMETHEUS", "CHATOPS"))}
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_app_without_slack_variables_exits_2_with_one_line(tmp_path):
    proc = _run_app([], {}, tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "SLACK_BOT_TOKEN" in lines[0]
    assert "Traceback" not in proc.stderr


def test_terminal_usage_error_exits_64_with_a_suggestion(tmp_path):
    proc = _run_app(["ops", "pdos", "checkout"], {}, tmp_path)
    assert proc.returncode == 64
    assert "Did you mean `pods`?" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_terminal_command_without_kubernetes_says_how_to_configure_it(tmp_path):
    proc = _run_app(["ops", "pods", "checkout", "-n", "prod"], {}, tmp_path)
    assert proc.returncode == 3
    assert "Kubernetes is not configured (set KUBECONFIG" in proc.stdout


# --- DATABASE_URL: every password form libpq reads is a secret; only host:port/db is shown ------


@pytest.mark.parametrize("url, password", [
    ("postgresql://app:pw-Secret1@db:5432/app", "pw-Secret1"),
    ("postgresql://app@db:5432/app?password=pw-Secret2", "pw-Secret2"),
    ("postgresql://app@db:5432/app?sslmode=require&password=pw%26Secret3", "pw&Secret3"),
    ("postgresql://app@db:5432/app?sslpassword=key-Secret4", "key-Secret4"),
    ("postgres://app:pw%40Secret5@db:5432/app", "pw@Secret5"),
])  # fmt: skip
def test_database_passwords_are_secrets_and_never_in_the_location(url, password):
    from bot.settings import database_location, safe_url
    from bot.slack.mrkdwn import redact

    settings = load_settings({"DATABASE_URL": url}, mode="cli")
    assert password in settings.secrets()
    assert database_location(url) == "db:5432/app"
    for shown in (safe_url(url), redact(url), redact(f"connecting to {url} failed", settings.secrets())):
        assert password not in shown and password.replace("&", "%26").replace("@", "%40") not in shown


def test_database_location_from_query_parameters_and_several_hosts():
    from bot.settings import database_location

    assert database_location("postgresql:///app?host=/run/postgresql&port=5433") == "/run/postgresql:5433/app"
    assert database_location("postgresql://u:p@h1:5432,h2:5433/app?password=x") == "h1:5432,h2:5433/app"


def test_redaction_covers_key_value_connection_strings_and_an_unencoded_at():
    from bot.slack.mrkdwn import redact

    out = redact("dsn host=db password='two words' sslpassword=k3y user=app; url postgresql://app:p@ss@db/app")
    assert "two words" not in out and "k3y" not in out and "p@ss" not in out and "ss@db" not in out
    assert "host=db" in out and "user=app" in out and "@db/app" in out


def test_an_unencoded_at_in_the_database_password_is_refused_at_start_without_the_password():
    with pytest.raises(ConfigError) as e:
        load_settings({**SLACK, "DATABASE_URL": "postgresql://app:hunt@er2@db:5432/app"}, mode="serve")
    message = str(e.value)
    assert "hunt" not in message and "er2" not in message and "\n" not in message
    assert "DATABASE_URL" in message and "db:5432/app" in message and "%40" in message


def test_app_with_an_ambiguous_database_url_exits_2_with_one_line(tmp_path):
    proc = _run_app([], {**SLACK, "DATABASE_URL": "postgresql://app:hunt@er2@db/app"}, tmp_path)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "hunt" not in proc.stderr + proc.stdout and "er2" not in proc.stderr + proc.stdout
