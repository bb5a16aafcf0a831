from pathlib import Path

import pytest
import yaml

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
SCOPES = {"chat:write", "commands", "channels:history", "groups:history", "files:write", "app_mentions:read",
          "channels:read", "groups:read",  # these two: alerts.listen by channel name
          "usergroups:read"}  # the policy's groups may name Slack user groups
EVENTS = {"app_mention", "message.channels", "message.groups"}


@pytest.mark.parametrize("name, socket_mode", [("slack-app.yaml", False), ("slack-app-socket-mode.yaml", True)])
def test_slack_app_manifest_declares_what_the_bot_uses(name, socket_mode):
    manifest = yaml.safe_load((MANIFESTS / name).read_text())
    assert manifest["display_information"]["name"]
    assert manifest["features"]["bot_user"]["display_name"]
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/ops"
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == SCOPES
    settings = manifest["settings"]
    assert set(settings["event_subscriptions"]["bot_events"]) == EVENTS
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is socket_mode
    urls = [command.get("url"), settings["event_subscriptions"].get("request_url"),
            settings["interactivity"].get("request_url")]
    if socket_mode:
        assert urls == [None, None, None]  # Slack rejects request URLs in Socket Mode manifests
    else:
        assert all(url and url.endswith("/slack/events") for url in urls)
