"""Every key, job id and lane the bot uses in the store, in one place.

The store namespaces claims, documents, sets, jobs and logs apart; within each, these functions
are the only way a key is spelled, so two modules can never disagree on a format and a reader of
the store can find what writes a key from here.

Documents
    thread:{source}:{id}                   an alert's thread (bot.alerting.state.AlertThread);
                                           source is "webhook" (the bot posted it; id: the
                                           Alertmanager group's, a hash of its groupKey) or
                                           "post" (Alertmanager posted it in Slack; id: the
                                           post's (channel, ts) hashed; before, the alert's
                                           fingerprint)
    command:{request}                      a slash command's answer (the post, once it is made)
    slack-channel:{name}                   the ID Slack answered for a channel addressed by name
    seen:post:{channel}:{ts}               an Alertmanager post whose work is done (Slack may
                                           deliver the same event again for a few minutes)
    action:{id}                            an approval request (bot.actions.request.ActionRequest)
    thread-root:{channel}:{ts}             the alert threads (keys) whose root is that message, for a
                                           mention in the thread (`@ops ack`)
    related:{bucket}                       a related-alerts incident: the threads it lists, its posts
    related-open                           the related-alerts incident alerts still join: its bucket and
                                           when its last alert came (a window that slides)
Logs
    critical-fired                         each critical thread opened: {thread, at} (related alerts)
    work-failed                            jobs given up on: id, kind, attempts, the last error
    audit                                  every request, preview, approval, refusal, cancel,
                                           expiry, execution and result (never expires)
Sets
    open-post-threads                      ids of the firing threads under Alertmanager's posts
Jobs (id -> what it does; the lane keeps kinds of work from waiting behind each other)
    thread:{source}:{id}                   lane alerts: bring the alert's thread up to date with
                                           the newest notification (one job per thread, so work
                                           on one thread never runs twice at once)
    post:{channel}:{ts}                    lane alerts: match an Alertmanager post to its alerts
    render-thread:{thread}                 lane alerts: edit the bot's alert post to show the thread
                                           as stored (one job per thread: edits never overtake)
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
    ack:{thread}:{user}:{ts}               lane incidents: acknowledge an alert thread (a click on
                                           Acknowledge, or `@ops ack` in the thread)
    escalate:{thread}:{starts_at}:{kind}   lane timers, due at the SLA's deadline (kind ack or
                                           resolve): escalate unless acknowledged / resolved
    escalate-now:{thread}:{event}          lane incidents: `@ops escalate <reason>` in the thread
    page:{dedup_key}:{action}:{entry}      lane incidents: one PagerDuty event of a manual or related
                                           incident (retried on 429/5xx)
    page:{source}:{id}:sync:{starts_at}    lane incidents: bring PagerDuty up to date with a thread's
                                           firing (trigger, acknowledge, resolve, in order, each once)
    related:{bucket}                       lane incidents: escalate related critical alerts once
    incident:{origin}                      lane incidents: `/ops escalate <reason>`, a manual incident
    postmortem:{thread}:{origin}           lane incidents: draft and upload a thread's post-mortem
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
# Acknowledgements, escalations, PagerDuty and post-mortems: apart from a storm's alerts.
LANE_INCIDENTS = "incidents"

# Job kinds: the handler a job runs.
KIND_THREAD = "alert-thread"
KIND_POST = "alert-post"
KIND_INVESTIGATE = "investigate"
KIND_RENDER_THREAD = "alert-render"
KIND_COMMAND = "command"
KIND_MENTION = "mention"
KIND_ACTION_REQUEST = "action-request"
KIND_ACTION_CLICK = "action-click"
KIND_ACTION_EXECUTE = "action-execute"
KIND_ACTION_EXPIRE = "action-expire"
KIND_ACTION_RENDER = "action-render"
KIND_ACK = "incident-ack"
KIND_ESCALATE = "incident-escalate"
KIND_PAGE = "incident-page"
KIND_PAGE_SYNC = "incident-page-sync"
KIND_RELATED = "incident-related"
KIND_MANUAL = "incident-manual"
KIND_POSTMORTEM = "incident-postmortem"

OPEN_POST_THREADS = "open-post-threads"
CRITICAL_FIRED_LOG = "critical-fired"
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


def thread_root(channel: str, ts: str) -> str:
    return f"thread-root:{channel}:{ts}"


def ack(thread_key: str, user: str, ts: str) -> str:
    return f"ack:{thread_key.removeprefix('thread:')}:{user}:{ts}"


def escalate(thread_key: str, starts_at: str, kind: str) -> str:
    return f"escalate:{thread_key.removeprefix('thread:')}:{starts_at}:{kind}"


def escalate_now(thread_key: str, event: str) -> str:
    return f"escalate-now:{thread_key.removeprefix('thread:')}:{event}"


def page(dedup_key: str, action: str, entry: str) -> str:
    return f"page:{dedup_key}:{action}:{entry}"


def related(bucket: int) -> str:
    return f"related:{bucket}"


def incident(origin: str) -> str:
    return f"incident:{origin}"


def postmortem(thread_key: str, origin: str) -> str:
    return f"postmortem:{thread_key.removeprefix('thread:')}:{origin}"


def render_thread(thread_key: str) -> str:
    return f"render-thread:{thread_key.removeprefix('thread:')}"


def related_open() -> str:
    return "related-open"
