"""The lab's GKE commands (A100 cluster, GPU node pool, drivers, metrics adapter) from one config.

``gcloud_commands(GkeConfig.lab_example())`` reproduces, argument for argument, the commands of the
lab (see docs: "The GKE A100 cluster could be created with command below"; the lab's own values,
kept only for that check). Project and cluster are required: :meth:`GkeConfig.example` gives
obvious placeholders. Commands are lists of arguments (for ``subprocess.run``);
:func:`cvlab.shell.as_shell_script` (re-exported here) turns them into a bash script.

Example:
    >>> config = GkeConfig(project_id="my-gcp-project", cluster_name="my-triton-cluster")
    >>> gcloud_commands(config)[2][4:]
    ['my-triton-cluster', '--project', 'my-gcp-project', '--zone', 'us-central1-a']
    >>> as_shell_script(gcloud_commands(config)).splitlines()[6].split(" --user ")[1]
    '"$(gcloud config get-value account)"'
"""

from __future__ import annotations

from dataclasses import dataclass

from cvlab.shell import ShellSubstitution, as_shell_script, shell_join

__all__ = [
    "DRIVER_DAEMONSET_URL",
    "EXAMPLE_CLUSTER_NAME",
    "EXAMPLE_PROJECT_ID",
    "GkeConfig",
    "STACKDRIVER_ADAPTER_URL",
    "as_shell_script",  # from cvlab.shell
    "gcloud_commands",
    "istio_ingress_command",
    "triton_url",
]

DRIVER_DAEMONSET_URL = (
    "https://raw.githubusercontent.com/GoogleCloudPlatform/container-engine-accelerators/"
    "master/nvidia-driver-installer/cos/daemonset-preloaded.yaml"
)
STACKDRIVER_ADAPTER_URL = (
    "https://raw.githubusercontent.com/GoogleCloudPlatform/k8s-stackdriver/master/"
    "custom-metrics-stackdriver-adapter/deploy/production/adapter.yaml"
)
#: Placeholders for examples and CLI defaults (obviously not a real project or cluster).
EXAMPLE_PROJECT_ID = "my-gcp-project"
EXAMPLE_CLUSTER_NAME = "my-triton-cluster"


@dataclass(frozen=True)
class GkeConfig:
    """Everything the lab's cluster commands depend on.

    ``project_id`` and ``cluster_name`` are required; the other defaults are the lab's machine
    choices (zone, A100 node pool, autoscaling 1..2), nothing tied to one account.
    """

    project_id: str
    cluster_name: str
    zone: str = "us-central1-a"
    region: str = "us-central1"
    machine_type: str = "n1-standard-8"
    num_nodes: int = 1
    subnetwork: str = "default"
    addons: tuple[str, ...] = ("HorizontalPodAutoscaling", "HttpLoadBalancing", "Istio")
    scopes: str = "cloud-platform"
    gpu_pool_name: str = "accel"
    gpu_machine_type: str = "a2-highgpu-1g"
    accelerator_type: str = "nvidia-tesla-a100"
    accelerator_count: int = 1
    gpu_num_nodes: int = 1
    min_nodes: int = 1
    max_nodes: int = 2
    disk_size_gb: int = 100
    verbosity: str = "error"

    def __post_init__(self) -> None:
        for name in ("project_id", "cluster_name", "zone", "machine_type", "gpu_machine_type"):
            if not getattr(self, name):
                raise ValueError(f"GkeConfig.{name} must not be empty")
        if not 0 < self.min_nodes <= self.max_nodes:
            raise ValueError(
                f"GkeConfig: need 0 < min_nodes <= max_nodes (got {self.min_nodes}..{self.max_nodes})"
            )
        if not self.min_nodes <= self.gpu_num_nodes <= self.max_nodes:
            raise ValueError(
                f"GkeConfig.gpu_num_nodes={self.gpu_num_nodes} is outside "
                f"min_nodes..max_nodes ({self.min_nodes}..{self.max_nodes})"
            )
        if self.accelerator_count < 1 or self.num_nodes < 1 or self.disk_size_gb < 10:
            raise ValueError("GkeConfig: accelerator_count/num_nodes >= 1 and disk_size_gb >= 10")
        if not self.zone.startswith(self.region):
            raise ValueError(f"GkeConfig.zone {self.zone!r} is not in region {self.region!r}")

    @classmethod
    def example(cls) -> GkeConfig:
        """Placeholder project and cluster (:data:`EXAMPLE_PROJECT_ID`, :data:`EXAMPLE_CLUSTER_NAME`)."""
        return cls(project_id=EXAMPLE_PROJECT_ID, cluster_name=EXAMPLE_CLUSTER_NAME)

    @classmethod
    def lab_example(cls) -> GkeConfig:
        """The lab author's own project and cluster, only to reproduce the lab text verbatim
        (``cvlab/resources/k8s/lab_gke_commands.sh``); use :meth:`example` or your own values."""
        return cls(project_id="k80-exploration", cluster_name="dongm-cv-gke")


def gcloud_commands(config: GkeConfig) -> list[list[str]]:
    """The lab's cluster setup: create cluster, GPU node pool, credentials, drivers, RBAC, metrics."""
    c = config
    return [
        [
            "gcloud", "beta", "container", "clusters", "create", c.cluster_name,
            f"--addons={','.join(c.addons)}",
            f"--machine-type={c.machine_type}",
            f"--node-locations={c.zone}",
            f"--zone={c.zone}",
            f"--subnetwork={c.subnetwork}",
            "--scopes", c.scopes,
            "--num-nodes", str(c.num_nodes),
            "--project", c.project_id,
        ],
        [
            "gcloud", "container", "node-pools", "create", c.gpu_pool_name,
            "--project", c.project_id,
            "--zone", c.zone,
            "--cluster", c.cluster_name,
            "--num-nodes", str(c.gpu_num_nodes),
            "--accelerator", f"type={c.accelerator_type},count={c.accelerator_count}",
            "--enable-autoscaling", "--min-nodes", str(c.min_nodes), "--max-nodes", str(c.max_nodes),
            "--machine-type", c.gpu_machine_type,
            f"--disk-size={c.disk_size_gb}",
            "--scopes", c.scopes,
            "--verbosity", c.verbosity,
        ],
        [
            "gcloud", "container", "clusters", "get-credentials", c.cluster_name,
            "--project", c.project_id, "--zone", c.zone,
        ],
        ["kubectl", "apply", "-f", DRIVER_DAEMONSET_URL],
        [
            "kubectl", "create", "clusterrolebinding", "cluster-admin-binding",
            "--clusterrole", "cluster-admin",
            "--user", ShellSubstitution("$(gcloud config get-value account)"),
        ],
        ["kubectl", "apply", "-f", STACKDRIVER_ADAPTER_URL],
    ]  # fmt: skip


def istio_ingress_command(namespace: str = "istio-system") -> list[str]:
    """The lab's lookup of the Istio ingress IP (``export INGRESS_HOST=$(...)``)."""
    return [
        "kubectl", "-n", namespace, "get", "service", "istio-ingressgateway",
        "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}",
    ]  # fmt: skip


def triton_url(ingress_host: str, port: int = 80) -> str:
    """``host:port`` for the Triton HTTP client from the ingress lookup's output."""
    host = ingress_host.strip().strip("'\"")
    if not host:
        raise ValueError(
            "empty ingress host: the istio-ingressgateway has no external IP yet "
            f"(run: {shell_join(istio_ingress_command())})"
        )
    return f"{host}:{port}"
