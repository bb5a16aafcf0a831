"""Kubernetes diagnostics.

* `client`: the ApiClient factory (`make_api_client`, `KubernetesConfigError`) and the
  error wording every Kubernetes diagnostic shares (`call_api`, `api_error_message`,
  `connection_reason`);
* `pods`: the `pods` diagnostic (`pod_status`) and the label-selector helpers;
* `pod_health`: the pure analysis of pods and deployments (`analyse_pod`,
  `summarise_deployment`, `humanise_age`) — testable without a server.

Nothing here runs at import: no client is built and no environment is read until
`make_api_client` is called.
"""

from diagnostics.kubernetes._text import MAX_MESSAGE_CHARS
from diagnostics.kubernetes.client import (
    SERVICE_ACCOUNT_TOKEN,
    KubernetesConfigError,
    api_error_message,
    call_api,
    connection_reason,
    make_api_client,
)
from diagnostics.kubernetes.pod_health import (
    HEALTHY_ROWS_KEPT_WHEN_FOLDED,
    POD_COLUMNS,
    RECENT_RESTART_SECONDS,
    PodHealth,
    analyse_pod,
    as_deployment,
    as_pod,
    humanise_age,
    summarise_deployment,
)
from diagnostics.kubernetes.pods import label_selector_string, pod_status, selector_matches

__all__ = [
    "HEALTHY_ROWS_KEPT_WHEN_FOLDED",
    "MAX_MESSAGE_CHARS",
    "POD_COLUMNS",
    "RECENT_RESTART_SECONDS",
    "SERVICE_ACCOUNT_TOKEN",
    "KubernetesConfigError",
    "PodHealth",
    "analyse_pod",
    "api_error_message",
    "as_deployment",
    "as_pod",
    "call_api",
    "connection_reason",
    "humanise_age",
    "label_selector_string",
    "make_api_client",
    "pod_status",
    "selector_matches",
    "summarise_deployment",
]
