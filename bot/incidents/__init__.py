"""Incidents outside Slack: paging (PagerDuty's Events API v2) and chatops.yaml `escalation:`.

    pagerduty.py   PagerDutyEvent (trigger, acknowledge, resolve), PagerDuty (send -> dedup_key;
                   429/5xx/timeouts: TemporaryError, other 4xx: PermanentError), dedup_key()
    config.py      `escalation:` (EscalationConfig): the runbook's SLAs, the related-alerts
                   trigger, the managers' channel

Low in bot's rings (below clients and state, above settings): alert threads, mitigations and the
clients may all use it; it knows nothing of Slack or the store.
"""
