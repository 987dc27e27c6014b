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
# # 04 · Deploy the IR model: export, TensorRT, model repository, GCS, Triton
#
# **What it does.** Exports the retrained model to ONNX (Triton's names `input_1`,
# `output_cov/Sigmoid`, `output_bbox/BiasAdd`, checked numerically against Keras); builds the
# TensorRT engine when TensorRT is present, or prints the `trtexec` / `tao-converter` commands
# the lab runs; writes the Triton model repository (the lab's `peoplenet_ir_tlt` config.pbtxt for
# a TensorRT plan on GKE, plus a CPU-servable variant for here); uploads the repository to a
# GCS bucket and (re)loads Triton from `gs://`, then checks the model is ready.
#
# **How long.** About 40 seconds on the embedded default.
#
# **Embedded default.** No GPU and no cloud: the GCS bucket is a local GCS API emulator
# (`gcp-storage-emulator`, started inside this notebook) and Triton is the CPU `tritonserver`
# bundled with `nvidia-pytriton`, reading the same `gs://` URL from the emulator. Set
# `GCS_MODEL_REPOSITORY` to your bucket (with application default credentials) for the real one.

# %% tags=["parameters"]
# ruff: noqa: E402  (a notebook: imports follow this parameters cell)
WORKSPACE = "runs/lab"
MODEL_NAME = "peoplenet_ir"  # local CPU variant (ONNX through Triton's python backend)
LAB_MODEL_NAME = "peoplenet_ir_tlt"  # the lab's TensorRT model name on GKE
ONNX_ATOL = 1e-4  # export check: max |ONNX - Keras|
TENSORRT_PRECISION = "fp16"  # "fp32", "fp16" or "int8" (int8 calibrates on training images)
MAX_BATCH_SIZE = 16
GCS_MODEL_REPOSITORY = None  # None: local emulator "gs://cvlab-lab/triton-model"; real: your bucket
GCP_PROJECT_ID = None  # real bucket: your project id (credentials come from gcloud, never here)

# %%
from IPython.display import display

from cvlab import lab

ws = lab.Workspace(WORKSPACE)
trained = lab.ensure_trained_model(ws)
print("trained model:", trained.model_path)

# %% [markdown]
# ## Export to ONNX (numerically checked)

# %%
onnx = lab.ensure_onnx(ws, trained, atol=ONNX_ATOL, force=True)
print(f"{onnx.path}  max |ONNX - Keras| = {onnx.max_abs_diff:.2e} (tolerance {ONNX_ATOL})")

# %% [markdown]
# ## TensorRT engine
# With TensorRT (a GPU machine) the engine is built with the TensorRT API: explicit batch,
# optimisation profile 1 / 8 / 16 on `input_1`, the chosen precision. Here it is absent, so the
# equivalent commands are printed.

# %%
engine = lab.tensorrt_step(
    ws, onnx.path, trained, precision=TENSORRT_PRECISION, max_batch_size=MAX_BATCH_SIZE
)
print(engine.message)
for command in engine.commands:
    print(command)

# %% [markdown]
# ## Model repository
# `model_repository_gke/peoplenet_ir_tlt/config.pbtxt` is the lab's config (tensorrt_plan,
# input_1 FP32 NCHW, output_bbox/BiasAdd [4,H/16,W/16], output_cov/Sigmoid [1,...],
# `dynamic_batching { }`), written with Triton's own protobuf schema; the engine goes to
# `1/model.plan` when one was built. `model_repository/peoplenet_ir` is the variant this CPU
# Triton can serve.

# %%
repos = lab.ensure_ir_repository(
    ws,
    trained,
    onnx.path,
    name=MODEL_NAME,
    lab_name=LAB_MODEL_NAME,
    engine=engine.engine_path,
    max_batch_size=MAX_BATCH_SIZE,
)
print(repos.lab_config_text)
display(repos.problems_table)

# %% [markdown]
# ## Upload to GCS and (re)load Triton from `gs://`

# %%
deployment = lab.deploy_from_gcs(
    ws, GCS_MODEL_REPOSITORY, project=GCP_PROJECT_ID, model_name=MODEL_NAME
)
display(deployment.upload_table)
print(deployment.message)

# %% [markdown]
# ## What was produced, and where

# %%
ws.update_state(deployed_gcs=deployment.gcs_url)
display(
    lab.produced_table(
        [onnx.path, ws.export, ws.model_repository, ws.gke_model_repository], ws.root
    )
)
