"""Valid objects to start from, and a thin client for sending them to an API server."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import ApiClient, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from gpufleet.api.v1alpha1 import GROUP, KINDS, VERSION, Resource

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CRDS = ROOT / "crds"
# The core examples first (namespaces before what lives in them), then any others.
CORE_EXAMPLES = ("namespaces.yaml", "fleet.yaml", "queues.yaml", "workloads.yaml")

MODELS: dict[str, type[Resource]] = {kind.__name__: kind for kind in KINDS}
PLURALS = {kind.__name__: kind.crd.plural for kind in KINDS}  # type: ignore[attr-defined]

Obj = dict[str, Any]


def example_files() -> list[str]:
    others = sorted(p.name for p in EXAMPLES.glob("*.yaml") if p.name not in CORE_EXAMPLES)
    return [*CORE_EXAMPLES, *others]


def load_examples(*names: str) -> list[Obj]:
    """Every document of the named example files (default: all of them, core first)."""
    objects: list[Obj] = []
    for name in names or example_files():
        with (EXAMPLES / name).open() as handle:
            objects.extend(doc for doc in yaml.safe_load_all(handle) if doc)
    return objects


def gpufleet_examples() -> list[Obj]:
    return [o for o in load_examples() if o["apiVersion"].startswith(f"{GROUP}/")]


def first_example(kind: str, name: str | None = None) -> Obj:
    """A copy of the first example of ``kind`` (or the one called ``name``)."""
    return copy.deepcopy(
        next(
            o
            for o in gpufleet_examples()
            if o["kind"] == kind and name in (None, o["metadata"]["name"])
        )
    )


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def renamed(objects: Iterable[Obj], suffix: str, namespace_map: dict[str, str]) -> list[Obj]:
    """Copies with every cluster-scoped name (and every reference to one) suffixed.

    The hub is shared with other tests and possibly a running dev fleet whose
    Sites carry the example names; renaming keeps the test from touching them.
    """
    out = []
    for original in objects:
        obj = copy.deepcopy(original)
        kind, spec, meta = obj["kind"], obj.get("spec", {}), obj["metadata"]
        if kind == "Namespace":
            meta["name"] = namespace_map[meta["name"]]
        elif kind == "Workload":
            meta["namespace"] = namespace_map[meta["namespace"]]
            spec["queue"] = f"{spec['queue']}-{suffix}"
            if "sitePreferences" in spec:
                spec["sitePreferences"] = [f"{s}-{suffix}" for s in spec["sitePreferences"]]
        else:
            meta["name"] = f"{meta['name']}-{suffix}"
            if kind == "GpuPool":
                spec["site"] = f"{spec['site']}-{suffix}"
            if kind == "Queue":
                if "parent" in spec:
                    spec["parent"] = f"{spec['parent']}-{suffix}"
                if "namespaces" in spec:
                    spec["namespaces"] = [namespace_map.get(n, n) for n in spec["namespaces"]]
                if "allowedSites" in spec:
                    spec["allowedSites"] = [f"{s}-{suffix}" for s in spec["allowedSites"]]
        out.append(obj)
    return out


def is_subset(written: Any, read: Any) -> bool:
    """Whether everything in ``written`` is in ``read`` unchanged (defaults may be added)."""
    if isinstance(written, dict):
        return isinstance(read, dict) and all(
            key in read and is_subset(value, read[key]) for key, value in written.items()
        )
    if isinstance(written, list):
        return (
            isinstance(read, list)
            and len(written) == len(read)
            and all(is_subset(w, r) for w, r in zip(written, read, strict=True))
        )
    return (type(written) is type(read) and written == read) or (
        isinstance(written, int | float)
        and not isinstance(written, bool)
        and isinstance(read, int | float)
        and written == read
    )


def api_error(exc: ApiException) -> str:
    """The server's explanation: the Status message, or the raw body."""
    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc.body or exc.reason)


@dataclass
class Server:
    """gpufleet objects against a real API server, through the kubernetes client."""

    client: ApiClient

    @property
    def api(self) -> CustomObjectsApi:
        return CustomObjectsApi(self.client)

    def _where(self, obj: Obj) -> tuple[str, str | None, str]:
        return PLURALS[obj["kind"]], obj["metadata"].get("namespace"), obj["metadata"]["name"]

    def create(self, obj: Obj, *, dry_run: bool = False) -> Obj:
        plural, namespace, _ = self._where(obj)
        extra: dict[str, Any] = {"field_validation": "Strict"}
        if dry_run:
            extra["dry_run"] = "All"
        if namespace is None:
            result = self.api.create_cluster_custom_object(GROUP, VERSION, plural, obj, **extra)
        else:
            result = self.api.create_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, obj, **extra
            )
        return dict(result)

    def get(self, obj: Obj) -> Obj:
        plural, namespace, name = self._where(obj)
        if namespace is None:
            return dict(self.api.get_cluster_custom_object(GROUP, VERSION, plural, name))
        return dict(self.api.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name))

    def patch(self, obj: Obj, body: Obj, *, status: bool = False, dry_run: bool = False) -> Obj:
        """A JSON merge patch of the object, or of its /status subresource."""
        plural, namespace, name = self._where(obj)
        extra: dict[str, Any] = {
            "field_validation": "Strict",
            "_content_type": "application/merge-patch+json",
        }
        if dry_run:
            extra["dry_run"] = "All"
        if namespace is None:
            call = (
                self.api.patch_cluster_custom_object_status
                if status
                else self.api.patch_cluster_custom_object
            )
            return dict(call(GROUP, VERSION, plural, name, body, **extra))
        ns_call = (
            self.api.patch_namespaced_custom_object_status
            if status
            else self.api.patch_namespaced_custom_object
        )
        return dict(ns_call(GROUP, VERSION, namespace, plural, name, body, **extra))

    def delete(self, obj: Obj) -> None:
        plural, namespace, name = self._where(obj)
        try:
            if namespace is None:
                self.api.delete_cluster_custom_object(GROUP, VERSION, plural, name)
            else:
                self.api.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def rejection(self, call: Any, what: object = "") -> ApiException:
        """Run ``call``; return the API server's refusal, failing if it accepted."""
        try:
            call()
        except ApiException as exc:
            return exc
        raise AssertionError(f"the API server accepted what it should have refused: {what}")
