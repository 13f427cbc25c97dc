"""`gpufleet site declare-lost`: a person's word that a site's pods are stopped.

When a member cluster's API server is gone, nothing there can be read: not its
pods, not its fence agent's record. The operator then never moves the site's
work by itself, since silence cannot tell a dead site from a cut link behind
which the pods run on. Someone who knows (the site is powered off, its nodes
are drained by hand, its containers were killed) says so here. The
declaration is written on the Site (`spec.lossDeclaration`: who, when, why)
and announced by an Event; the API server's audit log holds the request too.
It covers the placements admitted at the site before it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from gpufleet.cli.common import KubeconfigOpt, console, fail, out


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Sites: declare one lost when nothing else can.", no_args_is_help=True)
    group.command("declare-lost")(declare_lost_command)
    app.add_typer(group, name="site")


def declare_lost_command(
    site: Annotated[str, typer.Argument(help="The Site whose pods are known to be stopped.")],
    reason: Annotated[
        str, typer.Option(help="Why you know its pods are stopped (kept on the Site).")
    ] = "",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Declare even though the Site says it is connected (its pods may be running).",
        ),
    ] = False,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """Record that SITE's pods are stopped, so its `onSiteLoss: Requeue` workloads move now.

    Only declare what you know: a workload moved while its old pods still run is a
    workload running twice. The operator removes any old pods it finds when the site
    answers again.
    """
    from kubernetes.client import CustomObjectsApi
    from kubernetes.client.rest import ApiException

    from gpufleet.api.v1alpha1 import GROUP, VERSION
    from gpufleet.control.operator import hub_client
    from gpufleet.control.writer import Writer

    api = hub_client(str(kubeconfig) if kubeconfig else None)
    custom = CustomObjectsApi(api)
    try:
        body: dict[str, Any] = custom.get_cluster_custom_object(GROUP, VERSION, "sites", site)
    except ApiException as exc:
        raise fail(f"Site {site}: {exc.reason}; `kubectl get sites` lists them") from exc
    connected = next(
        (
            c.get("status")
            for c in (body.get("status") or {}).get("conditions") or []
            if c.get("type") == "Connected"
        ),
        None,
    )
    if connected == "True" and not force:
        raise fail(
            f"Site {site} says it is connected: its pods may be running. Fence it first"
            " (stop its nodes), wait for Connected=False, or pass --force if you know better."
        )
    by = _who(api)
    at = datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    declaration: dict[str, Any] = {"by": by, "at": at, "method": "Manual"}
    if reason:
        declaration["reason"] = reason
    written = custom.patch_cluster_custom_object(
        GROUP, VERSION, "sites", site, {"spec": {"lossDeclaration": declaration}}
    )
    message = f"declared lost by {by} at {at}" + (f": {reason}" if reason else "")
    Writer(api, component="gpufleet-cli").event(written, "Warning", "SiteDeclaredLost", message)
    console.print(f"Site {site} {message}")
    out.print(site, markup=False, highlight=False)


def _who(api: Any) -> str:
    """The caller as the hub's API server authenticates it (a SelfSubjectReview); the
    kubeconfig's user name where the server cannot say."""
    from kubernetes import client

    try:
        review = client.AuthenticationV1Api(api).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            _request_timeout=10,
        )
        name = review.status.user_info.username if review.status else None
        if name:
            return str(name)
    except Exception as exc:  # noqa: BLE001 - older servers have no SelfSubjectReview
        console.print(
            f"[dim]no SelfSubjectReview ({type(exc).__name__}); naming the kubeconfig's user[/dim]"
        )
    from kubernetes import config

    _, context = config.list_kube_config_contexts()
    user = (context or {}).get("context", {}).get("user")
    return f"kubeconfig user {user}" if user else "unknown"
