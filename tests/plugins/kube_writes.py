"""The API server's write semantics that kmock 0.8 lacks, for the objects the operations write.

A preview that writes is the worst bug the mitigations can have, and kmock would hide it: it
applies a `?dryRun=All` PATCH like any other, never bumps `metadata.resourceVersion`, accepts any
resourceVersion precondition, merges every dict body the same way whatever its Content-Type (no
strategic merge: a list of containers in the patch replaces the whole list), and applies a list
body as a JSON Patch whatever its Content-Type, answering a failed `test` op with a 500 after the
mutation was attempted. It also mutates the stored object in `_handle`, before any reaction runs,
so a reaction can't stop a write from landing.

So `ApiServerEmulator` leaves these writes to reactions (`write_reactions`), which the `kube`
fixture registers below the default priority (a test's own reaction, a 403 say, still wins and
then nothing is written, as on a real server):

* `PATCH`/`PUT` `/apis/apps/v1/namespaces/{ns}/deployments/{name}`, and the `scale` subresource
  (GET too: an autoscaling/v1 Scale built from the Deployment; a write changes the Deployment's
  `spec.replicas`); `PATCH`/`PUT` `/api/v1/namespaces/{ns}/configmaps/{name}`.
* `?dryRun=All`: the answer the write would give, nothing persisted, nothing bumped. Any other
  value, a bare `?dryRun` included, is refused as the API server's option validation refuses it:
  422 Invalid (`dryRun: Unsupported value`), nothing written.
* Every persisted write bumps `metadata.resourceVersion` (one counter for the whole cluster, as
  etcd's revision) and, for a Deployment whose spec changed, `metadata.generation` (a dry run's
  answer shows the new generation too, as the real one does, with the old resourceVersion).
* A write whose result carries a `metadata.resourceVersion` other than the current one (a PUT's
  body, a merge patch setting it, a JSON Patch replacing it) is a 409 Conflict `Status`.
* PATCH by Content-Type: `application/json-patch+json` (RFC 6902 with the `jsonpatch` library; a
  body that is not a list: 400; a failed `test` op or a path that does not resolve: 422 Invalid
  "the server rejected our request due to an error in our request", no causes, exactly as
  apiserver's applyJSPatch words it), `application/merge-patch+json` (RFC 7386),
  `application/strategic-merge-patch+json` (maps merged, `null` deletes, the lists below merged
  by their key, `$patch: delete|replace` honoured, other `$` directives ignored); anything else 415.
* A Deployment's `status` is kept as it was (the main resource can't change it); a negative
  `spec.replicas` is a 422 Invalid, worded like the API server's validation.
* Each persisted write is appended to `kube.writes`, each answered dry run to `kube.dry_runs`
  (`Write`: method, path, content type, parsed body, dry-run flag, the request's headers).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import jsonpatch
import jsonpointer
import kmock as kmock_lib

JSON = Any

DEPLOYMENT_PATH = re.compile(r"/apis/apps/v1/namespaces/(?P<ns>[^/]+)/deployments/(?P<name>[^/]+)")
SCALE_PATH = re.compile(r"/apis/apps/v1/namespaces/(?P<ns>[^/]+)/deployments/(?P<name>[^/]+)/scale")
CONFIGMAP_PATH = re.compile(r"/api/v1/namespaces/(?P<ns>[^/]+)/configmaps/(?P<name>[^/]+)")
WRITE_PATHS = (DEPLOYMENT_PATH, SCALE_PATH, CONFIGMAP_PATH)
WRITE_METHODS = ("PATCH", "PUT")

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

# Lists a strategic merge patch merges element by element, by this key (from the API's
# `patchMergeKey` tags); every other list is replaced whole, as in a merge patch.
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "ports": "containerPort", "imagePullSecrets": "name",
}
# Set by the server, whatever a write says.
SERVER_METADATA = ("name", "namespace", "uid", "creationTimestamp", "generation", "resourceVersion")
JSON_PATCH_FAILED = "the server rejected our request due to an error in our request"


@dataclass(frozen=True)
class Write:
    """One write the emulator answered: as sent, with `dry_run` saying whether it persisted."""

    method: str
    path: str
    content_type: str
    body: JSON
    dry_run: bool
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def impersonate(self) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == "impersonate-user"), None)


class Cluster(Protocol):
    kmock: kmock_lib.KubernetesEmulator
    writes: list[Write]
    dry_runs: list[Write]

    def next_resource_version(self) -> str: ...


class ApiServerEmulator(kmock_lib.KubernetesEmulator):
    """kmock's emulator, except that the writes in WRITE_PATHS are left to the reactions:
    kmock would otherwise apply them before any reaction runs (dry run or not)."""

    async def _handle(self, request: kmock_lib.Request) -> Any:
        if is_emulated_write(str(request.method.value), request.url.path):
            # Skip KubernetesEmulator._handle's bookkeeping; the reactions do it right.
            return await super(kmock_lib.KubernetesEmulator, self)._handle(request)
        return await super()._handle(request)


def is_emulated_write(method: str, path: str) -> bool:
    return method.upper() in WRITE_METHODS and any(p.fullmatch(path) for p in WRITE_PATHS)


def write_reactions(cluster: Cluster) -> list[tuple[str, re.Pattern[str], Callable[[kmock_lib.Request], Any]]]:
    """(method, path, reaction) for the `kube` fixture to register at a low priority."""
    write = _serve_write(cluster)
    return [
        *((method.lower(), path, write) for method in WRITE_METHODS for path in WRITE_PATHS),
        ("get", SCALE_PATH, _serve_scale(cluster)),
    ]


# ---------------------------------------------------------------------------------------
# Errors, worded like the API server's Status objects
# ---------------------------------------------------------------------------------------


def status_error(code: int, reason: str, message: str, **details: Any) -> kmock_lib.KubernetesError:
    # kmock adds a traceback when details are empty; real Status details name the object.
    return kmock_lib.KubernetesError(status=code, reason=reason, message=message,
                                     details=details or {"causes": []})


class Refused(Exception):
    """A write the emulated API server refuses: carries the Status error to answer."""

    def __init__(self, error: kmock_lib.KubernetesError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True)
class Kind:
    plural: str
    group: str
    kind: str

    @property
    def qualified(self) -> str:  # "deployments.apps", "configmaps"
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def kind_qualified(self) -> str:  # "Deployment.apps", "ConfigMap"
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def details(self, name: str) -> dict[str, str]:
        return {"name": name, "group": self.group, "kind": self.plural}

    def not_found(self, name: str) -> Refused:
        return Refused(status_error(404, "NotFound", f'{self.qualified} "{name}" not found', **self.details(name)))

    def conflict(self, name: str) -> Refused:
        return Refused(status_error(
            409, "Conflict", f'Operation cannot be fulfilled on {self.qualified} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again", **self.details(name)))

    def invalid(self, name: str, field_path: str, value: JSON, detail: str) -> Refused:
        cause = f"Invalid value: {value}: {detail}"
        return Refused(status_error(
            422, "Invalid", f'{self.kind_qualified} "{name}" is invalid: {field_path}: {cause}',
            causes=[{"reason": "FieldValueInvalid", "message": cause, "field": field_path}], **self.details(name)))


DEPLOYMENTS = Kind("deployments", "apps", "Deployment")
SCALES = Kind("deployments", "apps", "Scale")  # a Scale is named after its Deployment
CONFIGMAPS = Kind("configmaps", "", "ConfigMap")


def _bad_request(message: str) -> Refused:
    return Refused(status_error(400, "BadRequest", message))


# ---------------------------------------------------------------------------------------
# Patches: RFC 6902, RFC 7386 and (enough of) strategic merge
# ---------------------------------------------------------------------------------------


def apply_patch(document: JSON, body: JSON, content_type: str) -> JSON:
    """`document` patched by `body` as the API server reads a PATCH of `content_type`."""
    if content_type == JSON_PATCH:
        if not isinstance(body, list):
            # What Go's decoder says, which the API server passes on.
            raise _bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        try:
            return jsonpatch.apply_patch(document, body, in_place=False)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, KeyError, TypeError):
            raise Refused(status_error(422, "Invalid", JSON_PATCH_FAILED)) from None
    if content_type in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
        if not isinstance(body, dict):
            raise _bad_request(f"the body of a {content_type} patch must be a JSON object")
        return merge(document, body, strategic=content_type == STRATEGIC_MERGE_PATCH)
    raise Refused(status_error(415, "UnsupportedMediaType", f"the body of the request was in an unknown format "
                                                            f"- accepted media types include: {JSON_PATCH}, "
                                                            f"{MERGE_PATCH}, {STRATEGIC_MERGE_PATCH}"))


def merge(target: JSON, patch: JSON, *, strategic: bool) -> JSON:
    """RFC 7386 (`null` deletes a key, maps merge, anything else replaces); with `strategic`,
    the lists of MERGE_KEYS merge by key and `$patch` directives apply."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if strategic and patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if strategic and key.startswith("$"):
            continue  # $setElementOrder/…, $retainKeys: ordering and pruning hints the emulator ignores
        if value is None:
            result.pop(key, None)
        elif strategic and key in MERGE_KEYS and isinstance(value, list):
            result[key] = _merge_list(result.get(key) or [], value, MERGE_KEYS[key])
        else:
            result[key] = merge(result.get(key), value, strategic=strategic)
    return result


def _merge_list(current: list[JSON], patch: list[JSON], key: str) -> list[JSON]:
    merged = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise Refused(status_error(422, "Invalid", f"map: {item} does not contain declared merge key: {key}"))
        index = next((i for i, old in enumerate(merged) if isinstance(old, dict) and old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append(merge({}, item, strategic=True))
        else:
            merged[index] = merge(merged[index], item, strategic=True)
    return merged


# ---------------------------------------------------------------------------------------
# The Scale subresource
# ---------------------------------------------------------------------------------------


def scale_of(deployment: Mapping[str, JSON]) -> dict[str, JSON]:
    """The autoscaling/v1 Scale the API server builds from a Deployment."""
    meta, spec, status = deployment["metadata"], deployment.get("spec", {}), deployment.get("status", {})
    labels = spec.get("selector", {}).get("matchLabels", {})
    replicas = spec.get("replicas", 1)
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        # Go's `replicas,omitempty`: a Scale of 0 has no spec.replicas at all.
        "spec": {"replicas": replicas} if replicas else {},
        "status": {"replicas": status.get("replicas", 0),
                   **({"selector": ",".join(f"{k}={v}" for k, v in labels.items())} if labels else {})},
    }


def _serve_scale(cluster: Cluster) -> Callable[[kmock_lib.Request], Any]:
    def serve(request: kmock_lib.Request) -> Any:
        stored = _stored(cluster, request, DEPLOYMENTS)
        if stored is None:
            return DEPLOYMENTS.not_found(request.name or "").error
        return scale_of(stored.raw)

    return serve


# ---------------------------------------------------------------------------------------
# Writes
# ---------------------------------------------------------------------------------------


def _serve_write(cluster: Cluster) -> Callable[[kmock_lib.Request], Any]:
    def serve(request: kmock_lib.Request) -> Any:
        try:
            return _write(cluster, request)
        except Refused as refused:
            return refused.error

    return serve


def _write(cluster: Cluster, request: kmock_lib.Request) -> JSON:
    dry_run = _dry_run(request.params)
    scale = request.subresource == "scale"
    kind = CONFIGMAPS if request.resource is not None and request.resource.plural == "configmaps" else DEPLOYMENTS
    name = request.name or ""
    stored = _stored(cluster, request, kind)
    if stored is None:
        raise kind.not_found(name)
    current = copy.deepcopy(stored.raw)
    view = scale_of(current) if scale else current
    written = _written(request, view, name)

    sent_version = (written.get("metadata") or {}).get("resourceVersion")
    if sent_version and sent_version != current.get("metadata", {}).get("resourceVersion"):
        raise kind.conflict(name)

    if scale:
        replicas = (written.get("spec") or {}).get("replicas", 0)
        _check_replicas(SCALES, name, replicas)
        new = copy.deepcopy(current)
        new["spec"]["replicas"] = replicas
    else:
        new = _keep_server_fields(written, current, deployment=kind is DEPLOYMENTS)
        if kind is DEPLOYMENTS:
            _check_replicas(DEPLOYMENTS, name, (new.get("spec") or {}).get("replicas", 1))
    if kind is DEPLOYMENTS and new.get("spec") != current.get("spec"):
        new["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1

    record = Write(method=str(request.method.value), path=request.url.path, content_type=_content_type(request),
                   body=request.data, dry_run=dry_run, headers=dict(request.headers))
    if dry_run:
        cluster.dry_runs.append(record)
    else:
        new["metadata"]["resourceVersion"] = cluster.next_resource_version()
        stored.history.append(new)
        cluster.writes.append(record)
    return scale_of(new) if scale else new


def _dry_run(params: Mapping[str, str]) -> bool:
    if "dryRun" not in params:
        return False
    if params["dryRun"] == "All":
        return True
    value = params["dryRun"]
    # apiserver's ValidatePatchOptions / ValidateUpdateOptions: an Invalid error, nothing written.
    raise Refused(status_error(
        422, "Invalid", f'PatchOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: ["{value}"]: '
                        'supported values: "All"',
        causes=[{"reason": "FieldValueNotSupported", "field": "dryRun",
                 "message": f'Unsupported value: ["{value}"]: supported values: "All"'}]))


def _stored(cluster: Cluster, request: kmock_lib.Request, kind: Kind) -> Any:
    """kmock's stored object (an `Object` with history) for the request's path, or None."""
    key = (request.resource, request.namespace, request.name)
    objects = cluster.kmock.objects
    if key not in objects or objects[key].deleted:
        return None
    return objects[key]


def _content_type(request: kmock_lib.Request) -> str:
    header = next((v for k, v in request.headers.items() if k.lower() == "content-type"), "")
    return header.split(";")[0].strip().lower()


def _written(request: kmock_lib.Request, view: JSON, name: str) -> JSON:
    """What the object (or Scale) would be after this PATCH or PUT, before the server's fields."""
    if str(request.method.value).upper() == "PATCH":
        return apply_patch(view, request.data, _content_type(request))
    body = request.data
    if not isinstance(body, dict):
        raise _bad_request("the body of a PUT must be a JSON object")
    body_name = (body.get("metadata") or {}).get("name")
    if body_name != name:
        raise _bad_request(f"the name of the object ({body_name}) does not match the name on the URL ({name})")
    return copy.deepcopy(body)


def _keep_server_fields(written: JSON, current: JSON, *, deployment: bool) -> JSON:
    if not isinstance(written, dict):
        raise _bad_request("the patched object is not a JSON object")
    new = copy.deepcopy(written)
    metadata = new.get("metadata") if isinstance(new.get("metadata"), dict) else {}
    for key in SERVER_METADATA:
        if key in current["metadata"]:
            metadata[key] = current["metadata"][key]
        else:
            metadata.pop(key, None)
    new["metadata"] = metadata
    if deployment:
        # A write to the main resource can't change status (that is the status subresource's).
        if "status" in current:
            new["status"] = copy.deepcopy(current["status"])
        else:
            new.pop("status", None)
    return new


def _check_replicas(kind: Kind, name: str, replicas: JSON) -> None:
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise kind.invalid(name, "spec.replicas", replicas, "must be an integer")
    if replicas < 0:
        raise kind.invalid(name, "spec.replicas", replicas, "must be greater than or equal to 0")

