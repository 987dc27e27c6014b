# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Setup: what this machine offers the lab
#
# **What it does.** Checks the environment the lab needs (library versions, GPU or not, the
# Triton server binary, TensorRT, TAO, the NGC CLI, gcloud/kubectl), downloads the RGB PeopleNet
# model from NGC when the NGC CLI is present and online, and prints the GKE cluster commands of
# the lab for your project.
#
# **How long.** About 20 seconds (the NGC download, when it happens, depends on your network).
#
# **Embedded default.** No GPU, no cloud: the later notebooks use a synthetic FLIR dataset, a
# local Triton server on 127.0.0.1, a tiny DetectNet_v2 trained on CPU and a local GCS emulator.
# Change the parameters in the next cell to use the real setup.

# %% tags=["parameters"]
# ruff: noqa: E402  (a notebook: imports follow this parameters cell)
WORKSPACE = "runs/lab"  # lab workspace; relative paths start at the repository root
NGC_MODEL = "nvidia/tao/peoplenet:unpruned_v2.1"  # RGB PeopleNet on NGC (lab: tlt_peoplenet)
DOWNLOAD_NGC_MODEL = True  # only when the NGC CLI is installed, configured and NGC is reachable
GCP_PROJECT_ID = "my-gcp-project"  # real setup: your project id, e.g. "k80-exploration"
GKE_ZONE = "us-central1-a"
GKE_REGION = "us-central1"
GKE_CLUSTER = "cvlab-cv-gke"  # the lab: "dongm-cv-gke"
GCS_MODEL_REPOSITORY = None  # None: local GCS emulator; real: "gs://my-bucket/tlt/triton-model"
TRITON_URL = None  # None: local Triton started by the notebooks; real GKE: "34.x.x.x:80"

# %%
from IPython.display import Markdown, display

from cvlab import lab

ws = lab.Workspace(WORKSPACE)
print("workspace:", ws.root)

# %% [markdown]
# ## Environment check
# `status` tells what the later notebooks will do: with no GPU / TensorRT they serve ONNX models
# on the CPU Triton bundled with `nvidia-pytriton` and print the TensorRT build commands instead
# of running them.

# %%
env = lab.environment_table()
_ = lab.record_table(ws, "00_environment", env, "Environment (00_setup)")
display(env)

# %% [markdown]
# ## RGB PeopleNet from NGC
# The lab downloads `tlt_peoplenet:unpruned_v2.1` with the NGC CLI. Offline (or without the CLI)
# this cell says so and the lab uses its offline stand-in (see notebook 01).

# %%
ngc = lab.download_ngc_model(NGC_MODEL, ws.root / "ngc_models", enabled=DOWNLOAD_NGC_MODEL)
print(ngc.message)

# %% [markdown]
# ## Google Cloud: GKE cluster and model repository
# The lab's cluster commands, for your project (printed as a script, not run). The model
# repository bucket is used by notebook 04.

# %%
script = lab.gke_setup_script(ws, GCP_PROJECT_ID, GKE_CLUSTER, GKE_ZONE, GKE_REGION)
print(script)
print("model repository:", GCS_MODEL_REPOSITORY or "local GCS emulator (started in notebook 04)")
print("Triton:", TRITON_URL or "local tritonserver on 127.0.0.1 (started by the notebooks)")

# %% [markdown]
# ## What was produced, and where

# %%
ws.update_state(setup_done=True)
display(Markdown(f"Workspace `{ws.root}`"))
display(
    lab.produced_table([ws.report / "tables", ws.root / "gke_setup.sh", ws.state_file], ws.root)
)
