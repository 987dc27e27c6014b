"""Cloud deployment: GCS model repositories, GKE commands, Kubernetes manifests, ``cvlab deploy``.

Modules: :mod:`~cvlab.cloud.gcs` (google-cloud-storage sync), :mod:`~cvlab.cloud.gke` (the lab's
gcloud/kubectl commands), :mod:`~cvlab.cloud.manifests` (Triton Deployment/Service/HPA/Istio),
:mod:`~cvlab.cloud.deploy` (the deploy steps), :mod:`~cvlab.cloud.commands`.
"""
