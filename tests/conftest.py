"""Shared test wiring. Each plugin module owns one family of fixtures."""

pytest_plugins = [
    "tests.plugins.slack",
    "tests.plugins.servers",
    "tests.plugins.kube",
    "tests.plugins.bot",
    "tests.plugins.approvals",
    "tests.plugins.pagerduty",
]
