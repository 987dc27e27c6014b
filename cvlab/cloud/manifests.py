"""Kubernetes manifests for Triton on GKE (an alternative to the Marketplace application).

:func:`render_manifests` gives plain dicts (Deployment, Service, HorizontalPodAutoscaler and,
optionally, an Istio Gateway + VirtualService); :func:`to_yaml` joins them into one multi-document
YAML for ``kubectl apply -f -``.

Autoscaling metric. The HPA (``autoscaling/v2``) scales on a **Pods** metric served by the
custom-metrics Stackdriver adapter that the lab installs: by default ``avg_time_queue_us``, the
average time (microseconds) a request waited in Triton's queue, computed from Triton's Prometheus
counters ``nv_inference_queue_duration_us / nv_inference_request_success`` and exported to Cloud
Monitoring (e.g. by a Prometheus-to-Stackdriver sidecar or Google Managed Prometheus). Queue time
grows as soon as the GPUs cannot keep up, so it is a direct latency signal. Alternatively
:func:`gpu_duty_cycle_metric` scales on the **External** metric
``kubernetes.io|container|accelerator|duty_cycle`` that GKE exports without any sidecar.

``model_repository`` has no default: :data:`EXAMPLE_MODEL_REPOSITORY` is an obvious placeholder.

Example:
    >>> config = TritonDeploymentConfig(model_repository=EXAMPLE_MODEL_REPOSITORY)
    >>> [doc["kind"] for doc in render_manifests(config)]
    ['Deployment', 'Service', 'HorizontalPodAutoscaler']
    >>> from_yaml(to_yaml(render_manifests(config))) == render_manifests(config)
    True
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = [
    "EXAMPLE_MODEL_REPOSITORY",
    "HpaMetric",
    "TritonDeploymentConfig",
    "deployment",
    "from_yaml",
    "gpu_duty_cycle_metric",
    "horizontal_pod_autoscaler",
    "istio_gateway",
    "istio_virtual_service",
    "queue_time_metric",
    "render_manifests",
    "service",
    "to_yaml",
]

HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002
#: A placeholder gs:// model repository for examples (not a real bucket).
EXAMPLE_MODEL_REPOSITORY = "gs://my-bucket/triton-model-repository"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class HpaMetric:
    """One HPA metric: ``kind`` is "Pods" or "External"; target is an average value per pod."""

    kind: str
    name: str
    target_average_value: str
    selector: dict[str, str] = field(default_factory=dict)

    def to_spec(self) -> dict[str, Any]:
        """The ``spec.metrics[]`` entry (autoscaling/v2)."""
        metric: dict[str, Any] = {"name": self.name}
        if self.selector:
            metric["selector"] = {"matchLabels": dict(self.selector)}
        target = {"type": "AverageValue", "averageValue": self.target_average_value}
        if self.kind == "Pods":
            return {"type": "Pods", "pods": {"metric": metric, "target": target}}
        if self.kind == "External":
            return {"type": "External", "external": {"metric": metric, "target": target}}
        raise ValueError(f"HpaMetric.kind must be 'Pods' or 'External' (got {self.kind!r})")


def queue_time_metric(target_us: int = 50_000) -> HpaMetric:
    """Pods metric ``avg_time_queue_us`` (Triton queue time per request, via the adapter)."""
    return HpaMetric("Pods", "avg_time_queue_us", str(target_us))


def gpu_duty_cycle_metric(target_percent: int = 80) -> HpaMetric:
    """External metric of GPU utilisation that GKE exports to Cloud Monitoring by itself."""
    return HpaMetric(
        "External", "kubernetes.io|container|accelerator|duty_cycle", str(target_percent)
    )


@dataclass(frozen=True)
class TritonDeploymentConfig:
    """What the Triton manifests depend on.

    ``image_tag`` 20.11 is Triton 2.5.0, the version the lab uses for TAO 3.0 engines.
    ``gcs_credentials_secret``: a Secret holding a service-account key (``key_file`` in it) for
    clusters without Workload Identity; it is mounted read-only and never rendered into the YAML.
    """

    model_repository: str
    name: str = "triton"
    namespace: str = "default"
    image: str = "nvcr.io/nvidia/tritonserver"
    image_tag: str = "20.11"
    replicas: int = 1
    gpus: int = 1
    cpu: str = "4"
    memory: str = "16Gi"
    accelerator: str | None = "nvidia-tesla-a100"
    service_type: str = "LoadBalancer"
    min_replicas: int = 1
    max_replicas: int = 2
    metric: HpaMetric = field(default_factory=queue_time_metric)
    gcs_credentials_secret: str | None = None
    key_file: str = "key.json"
    istio: bool = False
    istio_host: str = "*"
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.model_repository.startswith("gs://"):
            raise ValueError(
                "TritonDeploymentConfig.model_repository must be a gs:// URL "
                f"(got {self.model_repository!r})"
            )
        for key in ("name", "namespace"):
            if not _DNS_LABEL.match(getattr(self, key)):
                raise ValueError(
                    f"TritonDeploymentConfig.{key} {getattr(self, key)!r} is not a DNS-1123 label"
                )
        if self.service_type not in ("LoadBalancer", "ClusterIP", "NodePort"):
            raise ValueError(
                f"TritonDeploymentConfig.service_type must be LoadBalancer, ClusterIP or NodePort "
                f"(got {self.service_type!r})"
            )
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(
                "TritonDeploymentConfig: need 1 <= min_replicas <= max_replicas "
                f"(got {self.min_replicas}..{self.max_replicas})"
            )
        if self.gpus < 0 or self.replicas < 1:
            raise ValueError("TritonDeploymentConfig: gpus >= 0 and replicas >= 1")

    @property
    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": "triton", "app.kubernetes.io/instance": self.name}

    def metadata(self, suffix: str = "") -> dict[str, Any]:
        return {
            "name": self.name + suffix,
            "namespace": self.namespace,
            "labels": dict(self.labels),
        }


def _probe(path: str, initial_delay: int, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
        "failureThreshold": failures,
    }


def deployment(config: TritonDeploymentConfig) -> dict[str, Any]:
    """The Triton Deployment (tritonserver --model-repository=gs://..., GPU limit, probes)."""
    resources: dict[str, Any] = {
        "requests": {"cpu": config.cpu, "memory": config.memory},
        "limits": {"memory": config.memory},
    }
    if config.gpus:
        resources["limits"]["nvidia.com/gpu"] = str(config.gpus)
    container: dict[str, Any] = {
        "name": "tritonserver",
        "image": f"{config.image}:{config.image_tag}-py3",
        "command": ["tritonserver"],
        "args": [f"--model-repository={config.model_repository}", *config.extra_args],
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": _probe("/v2/health/ready", 15, 5, 3),
        "livenessProbe": _probe("/v2/health/live", 60, 10, 6),
        "resources": resources,
    }
    pod_spec: dict[str, Any] = {"containers": [container]}
    if config.gpus:
        pod_spec["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
        if config.accelerator:
            pod_spec["nodeSelector"] = {"cloud.google.com/gke-accelerator": config.accelerator}
    if config.gcs_credentials_secret:
        container["env"] = [
            {"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": f"/secret/gcs/{config.key_file}"}
        ]
        container["volumeMounts"] = [
            {"name": "gcs-credentials", "mountPath": "/secret/gcs", "readOnly": True}
        ]
        pod_spec["volumes"] = [
            {"name": "gcs-credentials", "secret": {"secretName": config.gcs_credentials_secret}}
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": config.metadata(),
        "spec": {
            "replicas": config.replicas,
            "selector": {"matchLabels": dict(config.labels)},
            "template": {
                "metadata": {
                    "labels": dict(config.labels),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(METRICS_PORT),
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def service(config: TritonDeploymentConfig) -> dict[str, Any]:
    """Service exposing HTTP 8000, gRPC 8001 and metrics 8002."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": config.metadata(),
        "spec": {
            "type": config.service_type,
            "selector": dict(config.labels),
            "ports": [
                {"name": name, "port": port, "targetPort": name, "protocol": "TCP"}
                for name, port in (
                    ("http", HTTP_PORT),
                    ("grpc", GRPC_PORT),
                    ("metrics", METRICS_PORT),
                )
            ],
        },
    }


def horizontal_pod_autoscaler(config: TritonDeploymentConfig) -> dict[str, Any]:
    """autoscaling/v2 HPA of the Deployment on ``config.metric``."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": config.metadata(),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": config.name},
            "minReplicas": config.min_replicas,
            "maxReplicas": config.max_replicas,
            "metrics": [config.metric.to_spec()],
        },
    }


def istio_gateway(config: TritonDeploymentConfig) -> dict[str, Any]:
    """Istio Gateway on the ingress gateway's port 80 (what the lab's client calls)."""
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "Gateway",
        "metadata": config.metadata("-gateway"),
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [
                {
                    "port": {"number": 80, "name": "http", "protocol": "HTTP"},
                    "hosts": [config.istio_host],
                }
            ],
        },
    }


def istio_virtual_service(config: TritonDeploymentConfig) -> dict[str, Any]:
    """Istio VirtualService routing the gateway's HTTP traffic to Triton's port 8000."""
    host = f"{config.name}.{config.namespace}.svc.cluster.local"
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": config.metadata(),
        "spec": {
            "hosts": [config.istio_host],
            "gateways": [f"{config.name}-gateway"],
            "http": [{"route": [{"destination": {"host": host, "port": {"number": HTTP_PORT}}}]}],
        },
    }


def render_manifests(config: TritonDeploymentConfig) -> list[dict[str, Any]]:
    """Deployment, Service, HPA and (with ``config.istio``) Gateway + VirtualService."""
    docs = [deployment(config), service(config), horizontal_pod_autoscaler(config)]
    if config.istio:
        docs += [istio_gateway(config), istio_virtual_service(config)]
    return docs


def to_yaml(manifests: Iterable[dict[str, Any]]) -> str:
    """One multi-document YAML (``---`` separated), keys in the order written."""
    return "---\n".join(yaml.safe_dump(doc, sort_keys=False) for doc in manifests)


def from_yaml(text: str) -> list[dict[str, Any]]:
    """Inverse of :func:`to_yaml` (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(text) if doc]
