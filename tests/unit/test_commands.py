from pathlib import Path

import pytest

from bot.all_sections import Sections
from bot.commands.table import build_table
from bot.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def table():
    return build_table(Sections())


@pytest.mark.parametrize(
    "text, namespace",
    [
        ("pods checkout -n prod", "prod"),
        ("pods checkout --namespace prod", "prod"),
        ("pods checkout --namespace=prod", "prod"),
        ("pods checkout -nprod", "prod"),
        ("pods -n prod checkout", "prod"),
        ("pods checkout", "default-ns"),
        ("PODS checkout", "default-ns"),
    ],
)
def test_arguments_follow_kubectl_habits(table, text, namespace):
    invocation = table.parse(text, "default-ns")
    assert invocation.command.name == "pods"
    assert invocation.args == {"deployment": "checkout", "namespace": namespace}


def test_unknown_command_suggests_the_closest(table):
    with pytest.raises(UsageError, match=r"Did you mean `pods`\?"):
        table.parse("pdos checkout", "default")


def test_unknown_option_lists_the_known_ones_and_the_usage(table):
    with pytest.raises(UsageError) as e:
        table.parse("pods checkout --since 1h", "default")
    assert "-n, --namespace" in e.value.message
    assert e.value.usage == "pods <deployment> [-n <namespace>]"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "Which check?"),
        ("pods", "needs <deployment>"),
        ("pods checkout -n", "needs a value"),
        ("pods checkout -n a -n b", "given twice"),
        ("pods checkout extra", "Unexpected `extra`"),
        ("pods 'unclosed", "Could not read"),
        ("pods <!channel>", "not a valid deployment name"),
        ("pods checkout -n Prod_1", "not a valid namespace"),
    ],
)
def test_bad_arguments_get_a_clear_message(table, text, fragment):
    with pytest.raises(UsageError) as e:
        table.parse(text, "default")
    assert fragment in e.value.message


def test_curly_quotes_from_slack_clients_are_read_as_quotes(table):
    invocation = table.parse("pods \u201ccheckout\u201d", "default")
    assert invocation.args["deployment"] == "checkout"


def test_readme_and_manifests_list_exactly_the_commands_of_the_table():
    from bot.commands.docs import main

    assert main(["--check"]) == 0, "README or a manifest is out of date: run python -m bot.commands.docs"


def test_docs_generator_writes_every_usage_into_the_readme_table(table):
    from bot.commands.docs import readme_table, usage_hint

    text = readme_table(table)
    for command in table:
        assert f"`/ops {command.usage}`".replace("|", "\\|") in text  # a table cell escapes its pipes
        assert command.name in usage_hint(table)


def test_slack_answering_500_without_json_is_described_as_such():
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.slack_response import SlackResponse

    from bot.commands.report import describe_exception

    def answer(status: int, data: object) -> SlackApiError:
        response = SlackResponse(client=None, http_verb="POST", api_url="u", req_args={}, data=data,  # type: ignore[arg-type]
                                 headers={}, status_code=status)
        return SlackApiError("failed", response)

    assert describe_exception(answer(500, "<html>Internal Server Error</html>")) == "Slack answered HTTP 500"
    assert describe_exception(answer(200, {"ok": False, "error": "channel_not_found"})) == \
        "Slack answered channel_not_found"
    assert describe_exception(answer(500, {"ok": False, "error": "fatal_error"})) == "Slack answered HTTP 500"


def test_a_timeout_is_described_as_one_not_as_a_connection_failure():
    from bot.commands.report import describe_exception
    from bot.slack.once import refusal

    assert describe_exception(TimeoutError()) == "timed out"
    assert describe_exception(ConnectionRefusedError()) == "cannot connect (ConnectionRefusedError)"
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.slack_response import SlackResponse

    html = SlackResponse(client=None, http_verb="POST", api_url="u", req_args={},  # type: ignore[arg-type]
                         data="<html>500</html>", headers={}, status_code=500)
    assert refusal(SlackApiError("failed", html)) == ""  # not AttributeError: 'str' object has no attribute 'get'


def test_slacks_error_code_is_read_safely_from_json_and_from_an_html_page():
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.slack_response import SlackResponse

    from bot.slack.poster import slack_error

    def failure(data, status: int) -> SlackApiError:
        return SlackApiError("failed", SlackResponse(client=None, http_verb="POST", api_url="u",  # type: ignore[arg-type]
                                                     req_args={}, data=data, headers={}, status_code=status))

    assert slack_error(failure({"ok": False, "error": "not_in_channel"}, 200)) == "not_in_channel"
    assert slack_error(failure("<html>502 Bad Gateway</html>", 502)) == "HTTP 502"
    assert slack_error(failure({"ok": False}, 503)) == "HTTP 503"
