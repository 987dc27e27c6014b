"""``cvlab cloud upload|download|ls|verify|gke-script|manifests|deploy`` (rows of
:data:`cvlab.cli.VERBS`).

Heavy imports (google-cloud-storage, tritonclient) happen inside the commands. Defaults are
placeholders, never a real project or cluster: pass your own.
"""

from __future__ import annotations

import argparse
import sys

from cvlab.cli import positive_int
from cvlab.cloud.gke import EXAMPLE_CLUSTER_NAME, EXAMPLE_PROJECT_ID


def _gcs_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--project", help="Google Cloud project (default: from credentials)")
    p.add_argument(
        "--emulator-host", help="GCS emulator http://HOST:PORT (or STORAGE_EMULATOR_HOST)"
    )
    p.add_argument("--workers", type=positive_int, default=8, help="parallel transfers")
    p.add_argument("--no-progress", action="store_true")


def upload_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab cloud upload LOCAL_DIR gs://bucket/prefix`` (unchanged files are skipped)."""
    p.add_argument("local_dir")
    p.add_argument("gs_url")
    _gcs_options(p)


def download_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab cloud download gs://bucket/prefix LOCAL_DIR`` (unchanged files are skipped)."""
    p.add_argument("gs_url")
    p.add_argument("local_dir")
    _gcs_options(p)


def ls_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab cloud ls gs://bucket/prefix``."""
    p.add_argument("gs_url")
    _gcs_options(p)


def verify_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab cloud verify LOCAL_DIR gs://bucket/prefix`` (exit 1 on differences)."""
    p.add_argument("local_dir")
    p.add_argument("gs_url")
    _gcs_options(p)


def gke_script_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab cloud gke-script``: the gcloud/kubectl setup of the lab's GKE cluster."""
    p.add_argument("--project", default=EXAMPLE_PROJECT_ID, help="your Google Cloud project")
    p.add_argument("--cluster", default=EXAMPLE_CLUSTER_NAME, help="GKE cluster name")
    p.add_argument("--zone", default="us-central1-a")
    p.add_argument("--region", default="us-central1")
    p.add_argument("--max-nodes", type=positive_int, default=2)
    p.add_argument("--accelerator-count", type=positive_int, default=1)


def manifests_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab cloud manifests``: Triton Deployment/Service/HPA (and Istio) YAML."""
    p.add_argument("--model-repository", required=True, help="gs://bucket/prefix")
    p.add_argument("--image-tag", default="20.11", help="tritonserver tag (20.11 = Triton 2.5.0)")
    p.add_argument("--istio", action="store_true", help="add Istio Gateway/VirtualService")
    p.add_argument("--max-replicas", type=positive_int, default=2)


def deploy_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab cloud deploy``: validate -> upload -> manifests -> wait ready -> smoke test."""
    p.add_argument("--model-repository", required=True, help="local Triton model repository")
    p.add_argument("--gcs", required=True, help="gs://bucket/prefix to upload the repository to")
    p.add_argument("--project", help="Google Cloud project (default: from credentials)")
    p.add_argument(
        "--emulator-host", help="GCS emulator http://HOST:PORT (or STORAGE_EMULATOR_HOST)"
    )
    p.add_argument("--workers", type=positive_int, default=8, help="parallel uploads")
    p.add_argument("--apply", action="store_true", help="kubectl apply the manifests")
    p.add_argument("--kubectl", default="kubectl", help="kubectl command or path")
    p.add_argument("--manifests-out", help="also write the manifests YAML to this file")
    p.add_argument("--name", default="triton", help="Kubernetes name of the deployment")
    p.add_argument("--namespace", default="default")
    p.add_argument("--image-tag", default="20.11", help="tritonserver tag (20.11 = Triton 2.5.0)")
    p.add_argument("--gpus", type=int, default=1, help="nvidia.com/gpu per pod")
    p.add_argument("--max-replicas", type=int, default=2)
    p.add_argument(
        "--service-type", default="LoadBalancer", choices=["LoadBalancer", "ClusterIP", "NodePort"]
    )
    p.add_argument("--istio", action="store_true", help="add an Istio Gateway + VirtualService")
    p.add_argument("--gcs-secret", help="Secret with a service-account key for GCS (optional)")
    p.add_argument("--wait-ready", metavar="URL", help="poll URL/v2/health/ready (host:port)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds for --wait-ready")
    p.add_argument("--smoke-images", help="directory of images for a smoke inference")
    p.add_argument("--model", help="model for the smoke test (default: the only/first model)")
    p.add_argument("--no-progress", action="store_true")


def _client(args: argparse.Namespace):
    from cvlab.cloud.gcs import make_client

    return make_client(project=args.project, emulator_host=args.emulator_host)


def _transfer(args: argparse.Namespace, upload: bool) -> int:
    """Upload ``local_dir`` to ``gs_url`` or download it back; prints the sync report."""
    from cvlab.cloud import gcs

    move = gcs.upload_directory if upload else gcs.download_directory
    source, target = (args.local_dir, args.gs_url) if upload else (args.gs_url, args.local_dir)
    report = move(
        source, target, client=_client(args), workers=args.workers, progress=not args.no_progress
    )
    print(report.summary())
    return 0


def upload(args: argparse.Namespace) -> int:
    return _transfer(args, upload=True)


def download(args: argparse.Namespace) -> int:
    return _transfer(args, upload=False)


def ls(args: argparse.Namespace) -> int:
    from cvlab.cloud import gcs

    for info in gcs.list_blobs(args.gs_url, client=_client(args)):
        print(f"{info.size:>12}  {info.crc32c or '-':>10}  {info.path}")
    return 0


def verify(args: argparse.Namespace) -> int:
    from cvlab.cloud import gcs

    problems = gcs.verify(args.local_dir, args.gs_url, client=_client(args))
    for m in problems:
        print(f"{m.kind:<15} {m.path}  {m.detail}")
    print("identical" if not problems else f"{len(problems)} difference(s)")
    return 1 if problems else 0


def gke_script(args: argparse.Namespace) -> int:
    from cvlab.cloud.gke import GkeConfig, as_shell_script, gcloud_commands, istio_ingress_command
    from cvlab.shell import shell_join

    config = GkeConfig(
        project_id=args.project,
        cluster_name=args.cluster,
        zone=args.zone,
        region=args.region,
        max_nodes=args.max_nodes,
        accelerator_count=args.accelerator_count,
    )
    print(as_shell_script(gcloud_commands(config)), end="")
    print("# Istio ingress IP (the Triton client's -u HOST:80):")
    print(f"export INGRESS_HOST=$({shell_join(istio_ingress_command())})")
    return 0


def manifests(args: argparse.Namespace) -> int:
    from cvlab.cloud.manifests import TritonDeploymentConfig, render_manifests, to_yaml

    config = TritonDeploymentConfig(
        model_repository=args.model_repository,
        image_tag=args.image_tag,
        max_replicas=args.max_replicas,
        istio=args.istio,
    )
    print(to_yaml(render_manifests(config)), end="")
    return 0


def deploy(args: argparse.Namespace) -> int:
    from cvlab.cloud import deploy as steps
    from cvlab.cloud import gcs
    from cvlab.cloud.manifests import TritonDeploymentConfig
    from cvlab.fileio import atomic_write_text

    location = gcs.GcsLocation.parse(args.gcs)
    config = TritonDeploymentConfig(
        model_repository=location.url,
        name=args.name,
        namespace=args.namespace,
        image_tag=args.image_tag,
        gpus=args.gpus,
        max_replicas=args.max_replicas,
        service_type=args.service_type,
        istio=args.istio,
        gcs_credentials_secret=args.gcs_secret,
    )
    report = steps.run_deploy(
        args.model_repository,
        config,
        client_factory=lambda: _client(args),
        apply=args.apply,
        kubectl=args.kubectl,
        wait_ready_url=args.wait_ready,
        timeout=args.timeout,
        smoke_images=args.smoke_images,
        model_name=args.model,
        workers=args.workers,
        progress=not args.no_progress,
    )
    if args.manifests_out and report.apply is not None:
        atomic_write_text(args.manifests_out, report.apply.yaml)
    if report.ready is not None and not report.ready.ready:
        print(f"Triton at {args.wait_ready} did not become ready", file=sys.stderr)
        return 1
    return 0
