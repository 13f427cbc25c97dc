"""kwokctl's configuration for the dev fleets: KWOK manages only its own nodes, pods end gracefully.

Passed with `kwokctl --config` when a cluster is created; kwokctl copies it into
the cluster's own configuration.

Nodes: for `--runtime binary` kwokctl starts the KWOK controller with
`--manage-all-nodes=true`, so it would write node heartbeats and pod status for
every node, hollow kubelets' included (seen: pods on a hollow node reported
Running by KWOK before the kubelet had started them). A component patch makes
it manage only the nodes annotated `kwok.x-k8s.io/node: fake`, which the dev
tooling puts on the Nodes it creates (dev/nodes.py) and kubelets never do.

Stages: with any Stage in its configuration, kwokctl passes only those to the KWOK
controller, none of its defaults; so `kwok/default-stages.yaml` carries KWOK v0.8.0's
default stages as kwokctl would pick them for `--runtime binary` (node-initialize and
node-heartbeat-with-lease from kustomize/stage/node, pod-ready and pod-complete
from kustomize/stage/pod/fast; the heartbeat's delays are not rescaled by
`--heartbeat-factor 10`, because kwokctl only lengthens them when the status
update period exceeds them, and 10 x 10 s does not) with one replaced:
`pod-delete`.

KWOK's fast pod-delete removes a deleted pod at once, whatever its grace period.
Ours waits until the pod's `metadata.deletionTimestamp`, which the API server sets
to the time of the delete call plus its grace period (whole seconds): a pod stays
Terminating for its grace period, as a workload that uses all of its SIGTERM
window would, and a pod deleted with grace 0 goes at once.
"""

from __future__ import annotations

from pathlib import Path

# The KWOK release these defaults come from; a test holds it to hack/build-tools.sh's.
STAGES_FROM_KWOK = "v0.8.0"

# Verbatim from that release, as kwokctl picks them for `--runtime binary`.
KWOK_DEFAULT_STAGES = Path(__file__).with_name("kwok") / "default-stages.yaml"

GRACEFUL_POD_DELETE = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'Exists'
  delay:
    # A timestamp read by durationFrom is a point in time: KWOK waits until it.
    durationMilliseconds: 0
    durationFrom:
      expressionFrom: '.metadata.deletionTimestamp'
  next:
    delete: true
"""


KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node=fake"

MANAGE_ANNOTATED_NODES_ONLY = f"""\
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
componentsPatches:
- name: kwok-controller
  extraArgs:
  - key: manage-all-nodes
    value: "false"
    override: true
  - key: manage-nodes-with-annotation-selector
    value: {KWOK_NODE_ANNOTATION}
# One of each per cluster: without leader election they ride out a paused or restarted API
# server instead of exiting when their lease cannot be renewed (the fault tests pause it).
# kwokctl appends these (with `override: true` it only replaces an argument it already sets).
- name: kube-controller-manager
  extraArgs:
  - key: leader-elect
    value: "false"
- name: kube-scheduler
  extraArgs:
  - key: leader-elect
    value: "false"
"""


def kwokctl_config() -> str:
    """The multi-document YAML that `kwokctl --config` reads."""
    defaults = KWOK_DEFAULT_STAGES.read_text()
    return "---\n".join([MANAGE_ANNOTATED_NODES_ONLY, defaults, GRACEFUL_POD_DELETE])
