"""Approval fixtures: `policy_yaml` writes a chatops.yaml (POLICY by default), `approval_bot` is a
bot with kmock (prod/checkout at 3 replicas), the real Alertmanager and that policy, `ops` drives it."""

from __future__ import annotations

import pytest

from tests.approvals import POLICY, Ops


@pytest.fixture
def policy_yaml(tmp_path):
    def write(text: str = POLICY) -> str:
        path = tmp_path / "chatops.yaml"
        path.write_text(text)
        return str(path)

    return write


@pytest.fixture
async def approval_bot(start_bot, bot_env, kube, policy_yaml, alertmanager):
    kube.seed_deployment("checkout", "prod", replicas=3)
    return await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_URL": alertmanager.url,
                            "CHATOPS_CONFIG": policy_yaml()})


@pytest.fixture
def ops(approval_bot, http, fake_slack, signing_secret):
    return Ops(approval_bot, http, fake_slack, signing_secret)
