#!/usr/bin/env bash
set -euo pipefail
gcloud beta container clusters create my-triton-cluster --addons=HorizontalPodAutoscaling,HttpLoadBalancing,Istio --machine-type=n1-standard-8 --node-locations=us-central1-a --zone=us-central1-a --subnetwork=default --scopes cloud-platform --num-nodes 1 --project my-gcp-project
gcloud container node-pools create accel --project my-gcp-project --zone us-central1-a --cluster my-triton-cluster --num-nodes 1 --accelerator type=nvidia-tesla-a100,count=1 --enable-autoscaling --min-nodes 1 --max-nodes 2 --machine-type a2-highgpu-1g --disk-size=100 --scopes cloud-platform --verbosity error
gcloud container clusters get-credentials my-triton-cluster --project my-gcp-project --zone us-central1-a
kubectl apply -f https://raw.githubusercontent.com/GoogleCloudPlatform/container-engine-accelerators/master/nvidia-driver-installer/cos/daemonset-preloaded.yaml
kubectl create clusterrolebinding cluster-admin-binding --clusterrole cluster-admin --user "$(gcloud config get-value account)"
kubectl apply -f https://raw.githubusercontent.com/GoogleCloudPlatform/k8s-stackdriver/master/custom-metrics-stackdriver-adapter/deploy/production/adapter.yaml
