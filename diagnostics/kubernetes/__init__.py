"""Kubernetes diagnostics.

* `client`: the ApiClient factory (`make_api_client`, `KubernetesConfigError`) and the
  error wording every Kubernetes diagnostic shares (`call_api`, `api_error_message`,
  `connection_reason`);
* `pods`: the `pods` diagnostic (`pod_status`) and the label-selector helpers;
* `pod_health`: the pure analysis of pods and deployments (`analyse_pod`,
  `summarise_deployment`, `humanise_age`) — testable without a server;
* `deploy`: the `deploy` diagnostic (`deployment_rollout`, pure `rollout_state`) and the
  lookups the others share (`read_deployment`, `deployment_pods`, `missing`);
* `events` (`recent_events`, pure `fold_events`), `nodes` (`node_status`, pure
  `analyse_node`), `logs` (`workload_logs` with a `LogQuery`, pure `parse_log`/`merge`),
  `top` (`pod_usage`, pure `analyse_usage`), `configmap` (`configmap_contents`; never
  Secrets).

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
from diagnostics.kubernetes.configmap import configmap_contents
from diagnostics.kubernetes.deploy import (
    Rollout,
    deployment_pods,
    deployment_rollout,
    missing,
    read_deployment,
    rollout_state,
)
from diagnostics.kubernetes.events import MAX_EVENT_ROWS, FoldedEvent, fold_events, involves, recent_events
from diagnostics.kubernetes.logs import LogQuery, merge, parse_log, workload_logs
from diagnostics.kubernetes.nodes import analyse_node, node_status
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
from diagnostics.kubernetes.top import analyse_usage, pod_usage

__all__ = [
    "HEALTHY_ROWS_KEPT_WHEN_FOLDED",
    "MAX_EVENT_ROWS",
    "MAX_MESSAGE_CHARS",
    "POD_COLUMNS",
    "RECENT_RESTART_SECONDS",
    "SERVICE_ACCOUNT_TOKEN",
    "FoldedEvent",
    "KubernetesConfigError",
    "LogQuery",
    "PodHealth",
    "Rollout",
    "analyse_node",
    "analyse_pod",
    "analyse_usage",
    "api_error_message",
    "as_deployment",
    "as_pod",
    "call_api",
    "configmap_contents",
    "connection_reason",
    "deployment_pods",
    "deployment_rollout",
    "fold_events",
    "humanise_age",
    "involves",
    "label_selector_string",
    "make_api_client",
    "merge",
    "missing",
    "node_status",
    "parse_log",
    "pod_status",
    "pod_usage",
    "read_deployment",
    "recent_events",
    "rollout_state",
    "selector_matches",
    "summarise_deployment",
    "workload_logs",
]
