"""Kubernetes: the API client factory, and the error wording every Kubernetes diagnostic shares.

* `make_api_client`: an ApiClient from a kubeconfig or the in-cluster service account;
  any configuration it cannot use is a `KubernetesConfigError` with one readable line.
* `call_api`: runs a diagnostic's API calls under one timeout and turns API errors,
  connection failures, timeouts and unmodelled responses (CALL_FAILURES) into `Result.error`
  with the standard wording (`failure_message`, which operations/ shares).

Nothing here runs at import: no client is built and no environment is read until
`make_api_client` is called.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pydantic
import yaml
from kubernetes.aio import config
from kubernetes.aio.client import ApiClient, ApiException, Configuration
from kubernetes.aio.client.rest import RESTResponse
from kubernetes.aio.config import ConfigException

from diagnostics.blocking import off_loop
from diagnostics.kubernetes._text import one_line, truncate
from diagnostics.result import Result

# Where a pod finds its service-account token; its presence (with the env var) means in-cluster.
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class KubernetesConfigError(Exception):
    """The kubeconfig or in-cluster configuration cannot be used. One readable line."""


# ---------------------------------------------------------------------------------------
# Client factory
# ---------------------------------------------------------------------------------------


async def make_api_client(kubeconfig_path: str | None, *, in_cluster: bool | None = None) -> ApiClient | None:
    """An ApiClient for the kubeconfig, else the in-cluster service account, else None.

    `in_cluster=None` detects it (KUBERNETES_SERVICE_HOST and the token file). The global
    default Configuration of the kubernetes package is never touched, so several clients
    (and tests) can coexist in one process.
    """
    if kubeconfig_path:
        configuration = await _load_kubeconfig(kubeconfig_path)
        where = f"kubeconfig {kubeconfig_path}"
    else:
        if in_cluster is None:
            in_cluster = _running_in_cluster()
        if not in_cluster:
            return None
        configuration = _load_incluster()
        where = "in-cluster config"
    try:
        # The client builds its TLS context right away: a missing or bad CA/client cert fails here.
        return ApiClient(configuration)
    except (OSError, ValueError) as e:
        raise KubernetesConfigError(f"{where}: cannot load TLS certificates: {one_line(str(e))}") from None


# The API classes the bot calls and the models its typed calls return; load_models imports these
# and every model they refer to (about 170 of the client's 920 classes). A class missing here is
# still imported when first needed, on the event loop: a stall, never a failure.
USED_TYPES = (
    "CoreV1Api", "AppsV1Api", "CustomObjectsApi", "VersionApi", "AutoscalingV2Api",
    "V1PodList", "CoreV1EventList", "V1ReplicaSetList", "V1Namespace", "V1ConfigMap", "V1Deployment", "V1Pod",
    "V1Scale", "VersionInfo", "V1Status",
)
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z0-9]+")


def load_models(roots: tuple[str, ...] = USED_TYPES) -> int:
    """Import the Kubernetes client's classes the bot uses, and every model they refer to (about
    2 s, once per process; all 920 would take three times as long). Returns how many.

    The client imports a class the first time a call or a response needs it, on the event loop
    (CoreV1Api alone takes 0.6 s): a server would stall for a second or more on its first pod
    list. A server calls this in a thread at start and waits for it before taking work
    (bot.clients.Clients.warm_up); the terminal, running one command, does not.
    """
    import kubernetes.aio.client as kubernetes_client

    seen: set[str] = set()
    waiting = list(roots)
    while waiting:
        name = waiting.pop()
        if name in seen:
            continue
        seen.add(name)
        cls = getattr(kubernetes_client, name, None)
        for declared in getattr(cls, "openapi_types", {}).values():
            waiting.extend(t for t in _TYPE_NAME.findall(declared) if t not in seen)
    return len(seen)


async def read_list(api: ApiClient, raw: Awaitable[Any], response_type: str) -> Any:
    """A typed list call (`raw`: its `*_without_preload_content` variant) whose answer is decoded
    into models (JSON and pydantic: 0.1 s for 600 pods) in a thread when it is large, on the loop
    when it is small (diagnostics.blocking.off_loop); the same models and ApiException as the
    typed call (`response_type`: the class name it returns, "V1PodList")."""
    response = RESTResponse(await raw)
    data = await response.read()
    return (await off_loop(len(data), api.response_deserialize, response, {"200": response_type})).data


def _running_in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and SERVICE_ACCOUNT_TOKEN.is_file()


async def _load_kubeconfig(path: str) -> Configuration:
    # Read and parse it ourselves first: the library only logs a warning for a missing file
    # and then fails with "Expected key current-context in kube-config", which hides the cause.
    prefix = f"kubeconfig {path}"
    try:
        text = Path(path).expanduser().read_text()
    except FileNotFoundError:
        raise KubernetesConfigError(f"{prefix}: no such file") from None
    except IsADirectoryError:
        raise KubernetesConfigError(f"{prefix}: is a directory, not a file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise KubernetesConfigError(f"{prefix}: cannot read it ({_os_reason(e)})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise KubernetesConfigError(f"{prefix}: not valid YAML ({_yaml_reason(e)})") from None
    if not isinstance(document, dict):
        kind = "empty" if document is None else f"a {type(document).__name__}"
        raise KubernetesConfigError(
            f"{prefix}: expected a mapping with clusters, contexts and users, but it is {kind}"
        )

    configuration = Configuration()
    try:
        # persist_config=False: never write back to the operator's kubeconfig.
        loader = await config.load_kube_config(
            config_file=str(Path(path).expanduser()),
            client_configuration=configuration,
            persist_config=False,
        )
    except ConfigException as e:
        raise KubernetesConfigError(f"{prefix}: {_config_reason(e, path)}") from None
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        # The loader indexes into the document without checking types: a list where a
        # mapping belongs surfaces as one of these.
        reason = f"{type(e).__name__}: {one_line(str(e))}"
        raise KubernetesConfigError(f"{prefix}: malformed ({reason})") from None
    if not getattr(loader, "host", None):
        # Without `server`, the client would silently talk to its default http://localhost.
        raise KubernetesConfigError(f"{prefix}: the current context's cluster has no `server` URL")
    return configuration


def _load_incluster() -> Configuration:
    configuration = Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except ConfigException as e:
        raise KubernetesConfigError(f"in-cluster config: {_config_reason(e)}") from None
    except OSError as e:
        message = f"in-cluster config: cannot read the service account ({_os_reason(e)})"
        raise KubernetesConfigError(message) from None
    return configuration


def _config_reason(e: ConfigException, path: str | None = None) -> str:
    text = one_line(str(e))
    # The library prefixes most messages with this and names sections by the file's path
    # ("in /home/x/.kube/config/clusters list"); our prefix already says which file.
    text = text.removeprefix("Invalid kube-config file. ").strip()
    for name in filter(None, [path and str(Path(path).expanduser()), "kube-config"]):
        text = text.replace(f" in {name}/", " in ").replace(f" in {name}", " at the top level")
    return text or type(e).__name__


def _yaml_reason(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or one_line(str(e))
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return problem


def _os_reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or one_line(str(e)) or type(e).__name__


# ---------------------------------------------------------------------------------------
# API calls: failures as the standard error Result
# ---------------------------------------------------------------------------------------

T = TypeVar("T")

# What a call to the API can fail with, besides what the caller raises itself: the API's answer,
# the timeout, the connection, a response the typed client cannot model.
CALL_FAILURES = (ApiException, TimeoutError, aiohttp.ClientError, pydantic.ValidationError)


async def call_api(
    api: ApiClient, title: str, fetch: Callable[[], Awaitable[T]], *, timeout: float
) -> T | Result:
    """What `fetch` returns, or `Result.error(title, …)` if the Kubernetes API could not answer.

    `fetch` makes a diagnostic's API calls, passing `_request_timeout=timeout` to each; this
    bounds them together. It may itself return a Result (a "not found", say), so callers
    check `isinstance(outcome, Result)` before using what it fetched.
    """
    server = api.configuration.host
    try:
        # `_request_timeout` bounds each call; the outer timeout bounds them together.
        async with asyncio.timeout(timeout):
            return await fetch()
    except CALL_FAILURES as e:
        return Result.error(title, failure_message(e, server, timeout))


def failure_message(e: BaseException, server: str, timeout: float) -> str:
    """One line naming Kubernetes and the API host for any of CALL_FAILURES (never a credential)."""
    if isinstance(e, ApiException):
        return api_error_message(e, server)
    if isinstance(e, TimeoutError):
        return f"Kubernetes: timed out after {timeout:g} s at {server}"
    if isinstance(e, aiohttp.ClientConnectionError):
        return f"Kubernetes: cannot connect to {server}: {connection_reason(e)}"
    if isinstance(e, aiohttp.ClientError):
        return f"Kubernetes: request to {server} failed: {connection_reason(e)}"
    # The typed client rejects a response it cannot model; say so rather than crash.
    return f"Kubernetes: unexpected response from {server}: {one_line(str(e))}"


def api_error_message(e: ApiException, server: str) -> str:
    http_status = f"{e.status or 0} {e.reason or ''}".strip()  # "403 Forbidden"
    message = status_message(e) or e.reason or "no details"
    if e.status in (401, 403):
        return f"Kubernetes refused the request ({http_status}): {message}"
    return f"Kubernetes: API error {http_status} at {server}: {message}"


def status_message(e: ApiException) -> str:
    """The `message` of the Kubernetes Status object in the error body, if there is one."""
    body = e.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return ""
    try:
        document = json.loads(body)
    except ValueError:
        return truncate(one_line(body))
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        return truncate(one_line(document["message"]))
    return ""


def connection_reason(e: aiohttp.ClientError) -> str:
    # ClientConnectorError's str() repeats host and port; the OS error says what happened.
    os_error = getattr(e, "os_error", None)
    if isinstance(os_error, ConnectionRefusedError):
        # asyncio words it "Connect call failed ('10.0.0.1', 6443)", which hides the cause.
        return "connection refused"
    if os_error is not None:
        return _os_reason(os_error)
    return one_line(str(e)) or type(e).__name__
