"""Every key, job id and lane the bot uses in the store, in one place.

The store namespaces claims, documents, sets, jobs and logs apart; within each, these functions
are the only way a key is spelled, so two modules can never disagree on a format and a reader of
the store can find what writes a key from here.

Documents
    thread:{source}:{id}                   an alert's thread (bot.alerting.state.AlertThread);
                                           source is "webhook" (the bot posted it; id: the
                                           Alertmanager group's, a hash of its groupKey) or
                                           "post" (Alertmanager posted it in Slack; id: the
                                           alert's fingerprint)
    command:{request}                      a slash command's answer (the post, once it is made)
    slack-channel:{name}                   the ID Slack answered for a channel addressed by name
    seen:post:{channel}:{ts}               an Alertmanager post whose work is done (Slack may
                                           deliver the same event again for a few minutes)
    action:{id}                            an approval request (bot.actions.request.ActionRequest)
Logs
    work-failed                            jobs given up on: id, kind, attempts, the last error
    audit                                  every request, preview, approval, refusal, cancel,
                                           expiry, execution and result (never expires)
Sets
    open-post-threads                      fingerprints whose Alertmanager-post thread is firing
Jobs (id -> what it does; the lane keeps kinds of work from waiting behind each other)
    thread:{source}:{id}                   lane alerts: bring the alert's thread up to date with
                                           the newest notification (one job per thread, so work
                                           on one thread never runs twice at once)
    post:{channel}:{ts}                    lane alerts: match an Alertmanager post to its alerts
    investigate:{source}:{id}:{starts_at}[:{round}]
                                           lane investigations: run (a round of) the playbook in
                                           the thread
    command:{request}                      lane commands: run a slash command, post its answer
    mention:{event}                        lane commands: answer a mention of the bot with a hint
    request:{origin}                       lane actions: make an approval request (preview it, post
                                           it); origin is the slash command's or the click's id
    click:{request}:{user}:{action_ts}     lane actions: a click on an approval message's button
    execute:{request}                      lane actions: apply an approved change, edit the message
    expire:{request}                       lane timers, due when the request expires: a durable
                                           timer that edits the message if nobody approved it
    render:{request}                       lane actions: edit the approval message to show the
                                           request as stored (one job, so edits never overtake)
"""

from __future__ import annotations

from typing import Literal

ThreadSource = Literal["webhook", "post"]

# Lanes: each is leased separately with its own concurrency.
LANE_ALERTS = "alerts"
LANE_INVESTIGATIONS = "investigations"
LANE_COMMANDS = "commands"
LANE_ACTIONS = "actions"
# Durable timers (due later: an approval's expiry); apart, so that waiting for the other lanes
# to drain never waits for a timer minutes away.
LANE_TIMERS = "timers"

# Job kinds: the handler a job runs.
KIND_THREAD = "alert-thread"
KIND_POST = "alert-post"
KIND_INVESTIGATE = "investigate"
KIND_COMMAND = "command"
KIND_MENTION = "mention"
KIND_ACTION_REQUEST = "action-request"
KIND_ACTION_CLICK = "action-click"
KIND_ACTION_EXECUTE = "action-execute"
KIND_ACTION_EXPIRE = "action-expire"
KIND_ACTION_RENDER = "action-render"

OPEN_POST_THREADS = "open-post-threads"
FAILED_WORK_LOG = "work-failed"
AUDIT_LOG = "audit"


def thread(source: ThreadSource, fingerprint: str) -> str:
    return f"thread:{source}:{fingerprint}"


def alert_post(channel: str, ts: str) -> str:
    return f"post:{channel}:{ts}"


def post_seen(channel: str, ts: str) -> str:
    return f"seen:post:{channel}:{ts}"


def investigation(thread_key: str, starts_at: str, round_: int = 1) -> str:
    """The investigation of one firing's thread; its later rounds (alerts that joined) `:{round}`."""
    base = f"investigate:{thread_key.removeprefix('thread:')}:{starts_at}"
    return base if round_ == 1 else f"{base}:{round_}"


def command(request: str) -> str:
    return f"command:{request}"


def command_delayed(request: str) -> str:
    """Claimed when the person who asked was told their answer is delayed (told once, not per retry)."""
    return f"command-delayed:{request}"


def slack_channel(name: str) -> str:
    return f"slack-channel:{name}"


def mention(event_id: str) -> str:
    return f"mention:{event_id}"


def action_request(request_id: str) -> str:
    return f"action:{request_id}"


def make_request(origin: str) -> str:
    return f"request:{origin}"


def click(request_id: str, user: str, action_ts: str) -> str:
    return f"click:{request_id}:{user}:{action_ts}"


def execute(request_id: str) -> str:
    return f"execute:{request_id}"


def expire(request_id: str) -> str:
    return f"expire:{request_id}"


def render(request_id: str) -> str:
    return f"render:{request_id}"
