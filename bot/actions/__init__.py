"""Mitigations behind approval buttons (issue 9): who may request and approve which change.

policy.py holds chatops.yaml's `policy:` section and the Authorizer that decides, per user,
action and namespace, whether a request or an approval is allowed (Slack user groups included,
through a `members` callable, bot.slack.usergroups.UserGroups in the running bot).
"""
