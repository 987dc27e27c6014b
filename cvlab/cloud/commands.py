"""``cvlab deploy``, ``cvlab gcs upload|download|ls|verify`` and ``cvlab gke script``.

Heavy imports (google-cloud-storage, tritonclient) happen inside the commands.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    """Add the cloud sub-commands."""
    d = subparsers.add_parser(
        "deploy",
        help="validate -> upload to GCS -> print/apply Triton manifests -> wait ready -> smoke test",
    )
    d.add_argument("--model-repository", required=True, help="local Triton model repository")
    d.add_argument("--gcs", required=True, help="gs://bucket/prefix to upload the repository to")
    d.add_argument("--project", help="Google Cloud project (default: from credentials)")
    d.add_argument(
        "--emulator-host", help="GCS emulator http://HOST:PORT (or STORAGE_EMULATOR_HOST)"
    )
    d.add_argument("--workers", type=int, default=8, help="parallel uploads")
    d.add_argument("--apply", action="store_true", help="kubectl apply the manifests")
    d.add_argument("--kubectl", default="kubectl", help="kubectl command or path")
    d.add_argument("--manifests-out", help="also write the manifests YAML to this file")
    d.add_argument("--name", default="triton", help="Kubernetes name of the deployment")
    d.add_argument("--namespace", default="default")
    d.add_argument("--image-tag", default="20.11", help="tritonserver tag (20.11 = Triton 2.5.0)")
    d.add_argument("--gpus", type=int, default=1, help="nvidia.com/gpu per pod")
    d.add_argument("--max-replicas", type=int, default=2)
    d.add_argument(
        "--service-type", default="LoadBalancer", choices=["LoadBalancer", "ClusterIP", "NodePort"]
    )
    d.add_argument("--istio", action="store_true", help="add an Istio Gateway + VirtualService")
    d.add_argument("--gcs-secret", help="Secret with a service-account key for GCS (optional)")
    d.add_argument("--wait-ready", metavar="URL", help="poll URL/v2/health/ready (host:port)")
    d.add_argument("--timeout", type=float, default=600.0, help="seconds for --wait-ready")
    d.add_argument("--smoke-images", help="directory of images for a smoke inference")
    d.add_argument("--model", help="model for the smoke test (default: the only/first model)")
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=_deploy)

    g = subparsers.add_parser("gcs", help="Google Cloud Storage: upload, download, ls, verify")
    gsub = g.add_subparsers(dest="gcs_command", metavar="ACTION", required=True)
    up = gsub.add_parser("upload", help="upload a folder (unchanged files are skipped)")
    up.add_argument("local_dir")
    up.add_argument("gs_url")
    down = gsub.add_parser("download", help="download a prefix (unchanged files are skipped)")
    down.add_argument("gs_url")
    down.add_argument("local_dir")
    ls = gsub.add_parser("ls", help="list objects below a prefix")
    ls.add_argument("gs_url")
    ver = gsub.add_parser("verify", help="compare a folder with a prefix (exit 1 on differences)")
    ver.add_argument("local_dir")
    ver.add_argument("gs_url")
    for p in (up, down, ls, ver):
        p.add_argument("--project")
        p.add_argument("--emulator-host", help="GCS emulator http://HOST:PORT")
        p.add_argument("--workers", type=int, default=8)
        p.add_argument("--no-progress", action="store_true")
        p.set_defaults(func=_gcs)

    k = subparsers.add_parser("gke", help="print the lab's GKE setup script or Triton manifests")
    k.add_argument(
        "action",
        choices=["script", "manifests"],
        help="script: gcloud/kubectl setup; manifests: Triton Deployment/Service/HPA YAML",
    )
    k.add_argument("--model-repository", help="gs:// URL (manifests)")
    k.add_argument("--image-tag", default="20.11", help="tritonserver tag (manifests)")
    k.add_argument("--istio", action="store_true", help="add Istio Gateway/VirtualService")
    k.add_argument("--project", default="k80-exploration")
    k.add_argument("--cluster", default="dongm-cv-gke")
    k.add_argument("--zone", default="us-central1-a")
    k.add_argument("--region", default="us-central1")
    k.add_argument("--max-nodes", type=int, default=2)
    k.add_argument("--accelerator-count", type=int, default=1)
    k.set_defaults(func=_gke)


def _client(args: argparse.Namespace):
    from cvlab.cloud.gcs import make_client

    return make_client(project=args.project, emulator_host=args.emulator_host)


def _gcs(args: argparse.Namespace) -> int:
    from cvlab.cloud import gcs

    try:
        client = _client(args)
        progress = not args.no_progress
        if args.gcs_command == "upload":
            report = gcs.upload_directory(
                args.local_dir, args.gs_url, client=client, workers=args.workers, progress=progress
            )
            print(report.summary())
        elif args.gcs_command == "download":
            report = gcs.download_directory(
                args.gs_url, args.local_dir, client=client, workers=args.workers, progress=progress
            )
            print(report.summary())
        elif args.gcs_command == "ls":
            for info in gcs.list_blobs(args.gs_url, client=client):
                print(f"{info.size:>12}  {info.crc32c or '-':>10}  {info.path}")
        else:
            problems = gcs.verify(args.local_dir, args.gs_url, client=client)
            for m in problems:
                print(f"{m.kind:<15} {m.path}  {m.detail}")
            print("identical" if not problems else f"{len(problems)} difference(s)")
            return 1 if problems else 0
    except (gcs.GcsError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _gke(args: argparse.Namespace) -> int:
    from cvlab.cloud.gke import GkeConfig, as_shell_script, gcloud_commands, istio_ingress_command
    from cvlab.cloud.manifests import TritonDeploymentConfig, render_manifests, to_yaml

    try:
        if args.action == "manifests":
            if not args.model_repository:
                raise ValueError("gke manifests needs --model-repository gs://bucket/prefix")
            config = TritonDeploymentConfig(
                model_repository=args.model_repository,
                image_tag=args.image_tag,
                max_replicas=args.max_nodes,
                istio=args.istio,
            )
            print(to_yaml(render_manifests(config)), end="")
            return 0
        config = GkeConfig(
            project_id=args.project,
            cluster_name=args.cluster,
            zone=args.zone,
            region=args.region,
            max_nodes=args.max_nodes,
            accelerator_count=args.accelerator_count,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(as_shell_script(gcloud_commands(config)), end="")
    print("# Istio ingress IP (the Triton client's -u HOST:80):")
    import shlex

    print(f"export INGRESS_HOST=$({shlex.join(istio_ingress_command())})")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from cvlab.cloud import deploy, gcs
    from cvlab.cloud.manifests import TritonDeploymentConfig
    from cvlab.formats.kitti import atomic_write_text

    try:
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
        report = deploy.run_deploy(
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
            return 1
    except (
        gcs.GcsError,
        deploy.RepositoryInvalidError,
        deploy.KubectlError,
        ValueError,
        FileNotFoundError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
