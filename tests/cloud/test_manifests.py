"""Triton manifests validated by loading them into the kubernetes Python client's models."""

from __future__ import annotations

import json

import pytest
from kubernetes import client as k8s

from cvlab.cloud.manifests import (
    EXAMPLE_MODEL_REPOSITORY,
    TritonDeploymentConfig,
    from_yaml,
    gpu_duty_cycle_metric,
    render_manifests,
    to_yaml,
)
from cvlab.resources import TRITON_MANIFEST_NAME, resource_path

REPO = EXAMPLE_MODEL_REPOSITORY
MODEL_TYPES = {
    "Deployment": "V1Deployment",
    "Service": "V1Service",
    "HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler",
}


def load_model(doc: dict):
    """Deserialize like the client does for an API response, and check that nothing was dropped:
    serializing the model again must give the same dict (a misspelt field would vanish)."""
    api = k8s.ApiClient()
    # The JSON round trip gives what an API server response would hold; __deserialize is what
    # ApiClient.deserialize calls after json.loads (its public signature differs by version).
    data = json.loads(json.dumps(doc))
    model = api._ApiClient__deserialize(data, MODEL_TYPES[doc["kind"]])
    assert api.sanitize_for_serialization(model) == doc
    return model


def by_kind(docs: list[dict]) -> dict[str, dict]:
    return {d["kind"]: d for d in docs}


def test_default_manifests_load_into_kubernetes_models():
    config = TritonDeploymentConfig(model_repository=REPO)
    docs = render_manifests(config)
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "HorizontalPodAutoscaler"]
    models = {d["kind"]: load_model(d) for d in docs}

    dep: k8s.V1Deployment = models["Deployment"]
    (container,) = dep.spec.template.spec.containers
    assert container.image == "nvcr.io/nvidia/tritonserver:20.11-py3"
    assert f"--model-repository={REPO}" in container.args
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert {p.container_port for p in container.ports} == {8000, 8001, 8002}
    assert container.readiness_probe.http_get.path == "/v2/health/ready"
    assert container.liveness_probe.http_get.path == "/v2/health/live"
    http_port = next(p for p in container.ports if p.name == "http")
    assert container.readiness_probe.http_get.port == http_port.name
    assert http_port.container_port == 8000
    assert dep.spec.selector.match_labels == dep.spec.template.metadata.labels
    assert dep.spec.template.spec.node_selector == {
        "cloud.google.com/gke-accelerator": "nvidia-tesla-a100"
    }
    assert container.env is None and dep.spec.template.spec.volumes is None

    svc: k8s.V1Service = models["Service"]
    assert svc.spec.type == "LoadBalancer"
    assert svc.spec.selector == dep.spec.template.metadata.labels
    assert {(p.port, p.target_port) for p in svc.spec.ports} == {
        (8000, "http"),
        (8001, "grpc"),
        (8002, "metrics"),
    }

    hpa: k8s.V2HorizontalPodAutoscaler = models["HorizontalPodAutoscaler"]
    assert hpa.spec.scale_target_ref.name == dep.metadata.name
    assert hpa.spec.scale_target_ref.kind == "Deployment"
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 2)
    (metric,) = hpa.spec.metrics
    assert metric.type == "Pods" and metric.pods.metric.name == "avg_time_queue_us"
    assert metric.pods.target.type == "AverageValue"


def test_options_credentials_clusterip_external_metric_and_istio():
    config = TritonDeploymentConfig(
        model_repository=REPO,
        name="peoplenet",
        namespace="vision",
        image_tag="24.08",
        service_type="ClusterIP",
        max_replicas=4,
        metric=gpu_duty_cycle_metric(70),
        gcs_credentials_secret="gcs-key",
        istio=True,
    )
    docs = render_manifests(config)
    kinds = by_kind(docs)
    assert set(kinds) == {*MODEL_TYPES, "Gateway", "VirtualService"}
    dep = load_model(kinds["Deployment"])
    (container,) = dep.spec.template.spec.containers
    assert container.image.endswith(":24.08-py3")
    assert container.env[0].name == "GOOGLE_APPLICATION_CREDENTIALS"
    mount = container.volume_mounts[0]
    (volume,) = dep.spec.template.spec.volumes
    assert volume.name == mount.name and volume.secret.secret_name == "gcs-key"
    assert container.env[0].value.startswith(mount.mount_path) and mount.read_only
    assert load_model(kinds["Service"]).spec.type == "ClusterIP"
    hpa = load_model(kinds["HorizontalPodAutoscaler"])
    (metric,) = hpa.spec.metrics
    assert metric.type == "External"
    assert metric.external.metric.name == "kubernetes.io|container|accelerator|duty_cycle"
    assert metric.external.target.average_value == "70"
    # Istio CRDs: no Python models, checked structurally.
    gateway, vservice = kinds["Gateway"], kinds["VirtualService"]
    assert gateway["apiVersion"] == vservice["apiVersion"] == "networking.istio.io/v1beta1"
    assert gateway["spec"]["selector"] == {"istio": "ingressgateway"}
    assert gateway["spec"]["servers"][0]["port"]["number"] == 80
    assert vservice["spec"]["gateways"] == [gateway["metadata"]["name"]]
    dest = vservice["spec"]["http"][0]["route"][0]["destination"]
    assert dest == {"host": "peoplenet.vision.svc.cluster.local", "port": {"number": 8000}}
    assert all(d["metadata"]["namespace"] == "vision" for d in docs)


def test_yaml_round_trip_keeps_every_document():
    docs = render_manifests(TritonDeploymentConfig(model_repository=REPO, istio=True))
    text = to_yaml(docs)
    assert text.count("\n---\n") == len(docs) - 1
    assert from_yaml(text) == docs


def test_cpu_only_deployment_has_no_gpu_limit_or_selector():
    dep = load_model(render_manifests(TritonDeploymentConfig(model_repository=REPO, gpus=0))[0])
    assert "nvidia.com/gpu" not in dep.spec.template.spec.containers[0].resources.limits
    assert dep.spec.template.spec.node_selector is None


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"model_repository": "/local/repo"}, "model_repository"),
        ({"name": "Triton_Server"}, "name"),
        ({"service_type": "Ingress"}, "service_type"),
        ({"min_replicas": 3, "max_replicas": 2}, "min_replicas"),
    ],
)
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TritonDeploymentConfig(**{"model_repository": REPO, **kwargs})


def test_bad_metric_kind_is_rejected():
    from cvlab.cloud.manifests import HpaMetric

    config = TritonDeploymentConfig(model_repository=REPO, metric=HpaMetric("Object", "x", "1"))
    with pytest.raises(ValueError, match="Pods"):
        render_manifests(config)


def test_shipped_example_manifests_are_current():
    """cvlab/resources/k8s/triton.yaml renders the placeholder repository (regenerate when this fails)."""

    shipped = resource_path(TRITON_MANIFEST_NAME)
    config = TritonDeploymentConfig(model_repository=REPO, istio=True)
    assert from_yaml(shipped.read_text()) == render_manifests(config)
