# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Setup: the lab in six steps, and what this machine can run
#
# **What it does.** Gives the overview of the lab, checks what this machine offers (a short
# verdict first, the details folded away), downloads the RGB PeopleNet model from NGC when the
# NGC CLI is present and online, and writes the lab's GKE cluster commands for your project.
#
# **How long.** About 15 s on a 2-core laptop; the whole lab about 3 minutes (the table below
# lists every notebook's time in the last `make demo`, and the line under the imports this one's).
#
# ## The story: a people detector trained on daylight, taken to thermal cameras
# NVIDIA's **PeopleNet** finds people, bags and faces in ordinary (RGB) camera images. Night,
# smoke and glare call for **thermal** cameras, where people are bright, textureless
# silhouettes: a model trained on colour images misses most of them. The lab fixes that by
# retraining the detector on FLIR's thermal images and serving both models with Triton on GKE,
# so the same client can compare them.
#
# | notebook | step | offline here (embedded default) | real setup |
# |---|---|---|---|
# | 00 | setup | environment check | NGC CLI, gcloud, a GKE A100 cluster |
# | 01 | RGB inference | a stand-in trained on synthetic street frames, local Triton | PeopleNet (TensorRT) on Triton in GKE |
# | 02 | FLIR to KITTI and TFRecords | synthetic FLIR-like thermal frames | the FLIR ADAS download |
# | 03 | retrain on thermal | tiny DetectNet_v2 on the CPU | TAO `detectnet_v2 train`, ResNet-34, GPUs |
# | 04 | deploy the IR model | ONNX, local GCS emulator, local Triton | TensorRT plan in a GCS bucket, Triton on GKE |
# | 05 | IR inference, before/after | both stand-ins on held-out thermal frames | both models on your FLIR images |
#
# Every notebook runs offline on this machine as it is (no GPU, no cloud, no download) and
# shows the real setup's commands beside the offline steps; set the parameters to use it.
# The picture below is the whole pipeline; the table after it, how long each step takes.

# %% tags=["parameters"]
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
from IPython.display import display

from cvlab import lab

ws = lab.Workspace(WORKSPACE)
print(lab.how_long("00_setup"))

# %% [markdown]
# ## The pipeline
# Top: what notebooks 01 and 05 do with a camera frame. Bottom: how notebooks 02 to 04 make
# the thermal model that Triton then serves.

# %%
_ = lab.pipeline_figure()

# %% [markdown]
# ## How long each step takes
# Measured by the last `make demo` on a 2-core machine (notebook 01 includes training its
# RGB stand-in, notebook 03 the thermal model).

# %%
display(lab.table(lab.timings_table()))

# %% [markdown]
# ## Can this machine run the lab?

# %%
env = lab.environment_table()
_ = lab.record_table(ws, "00_environment", env, "Environment (00_setup)")
display(lab.table(lab.verdict_table(env)))
display(lab.folded(env, f"Environment details ({len(env)} components)"))

# %% [markdown]
# ## RGB PeopleNet from NGC
# The lab downloads `tlt_peoplenet:unpruned_v2.1` with the NGC CLI (notebook 01 shows the
# whole real-setup chain: download, TensorRT plan, bucket, Triton on GKE). Offline, or without
# the CLI, this cell says so and notebook 01 trains its offline stand-in.

# %%
ngc = lab.download_ngc_model(NGC_MODEL, ws.root / "ngc_models", enabled=DOWNLOAD_NGC_MODEL)
print(ngc.message)

# %% [markdown]
# ## Google Cloud: the GKE cluster
# The lab's cluster commands for your project (A100 node pool, GPU drivers, custom-metrics
# adapter), written to `gke_setup.sh` in the workspace and never run here. Notebook 04 deploys
# Triton on that cluster.

# %%
script = lab.gke_setup_script(ws, GCP_PROJECT_ID, GKE_CLUSTER, GKE_ZONE, GKE_REGION)
display(lab.folded(script, f"gke_setup.sh ({len(script.splitlines())} lines)"))
print("model repository:", GCS_MODEL_REPOSITORY or "local GCS emulator (started in notebook 04)")
print("Triton:", TRITON_URL or "local tritonserver on 127.0.0.1 (started by the notebooks)")

# %% [markdown]
# ## What was produced, and where

# %%
ws.update_state(setup_done=True)
print("workspace:", ws.root)
display(
    lab.table(
        lab.produced_table([ws.report / "tables", ws.root / "gke_setup.sh", ws.state_file], ws.root)
    )
)
