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
# # 04 · Deploy the IR model: export, TensorRT, model repository, GCS, Triton
#
# **What it does.** Exports the retrained model to ONNX (Triton's names `input_1`,
# `output_cov/Sigmoid`, `output_bbox/BiasAdd`, checked numerically against Keras); builds the
# TensorRT engine when TensorRT is present, or prints the command that builds it from that ONNX
# file; writes the Triton model repository (the lab's `peoplenet_ir_tlt` config.pbtxt for a
# TensorRT plan on GKE, plus a CPU-servable variant for here); uploads the repository to a GCS
# bucket, (re)loads Triton from `gs://` and checks the model answers.
#
# **How long.** About 20 s on a 2-core laptop (the line under the imports gives the last
# `make demo`'s measurement).
#
# **Embedded default.** No GPU and no cloud: the GCS bucket is a local GCS API emulator
# (`gcp-storage-emulator`, started inside this notebook) and Triton is the CPU `tritonserver`
# bundled with `nvidia-pytriton`, reading the same `gs://` URL from the emulator. Set
# `GCS_MODEL_REPOSITORY` to your bucket (with application default credentials) for the real
# one; the lab's GKE steps are at the end.

# %% tags=["parameters"]
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
print("trained model:", trained.model_path.relative_to(ws.root))
print(lab.how_long("04_ir_deploy"))

# %% [markdown]
# ## Export to ONNX (numerically checked)

# %%
onnx = lab.ensure_onnx(ws, trained, atol=ONNX_ATOL, force=True)
print(f"{onnx.path.relative_to(ws.root)}: max |ONNX - Keras| = {onnx.max_abs_diff:.1e}")
print(f"check passed: the ONNX model matches Keras within {ONNX_ATOL:g}")

# %% [markdown]
# ## TensorRT engine
# With TensorRT (a GPU machine) the engine is built here with the TensorRT API: explicit
# batch, optimisation profile 1 / 8 / 16 on `input_1`, the chosen precision. Without it the
# command is printed; it reads the ONNX file written above. The lab's own route (TAO's `.etlt`
# and `tlt-converter`) is in the real-setup steps at the end.

# %%
engine = lab.tensorrt_step(
    ws, onnx.path, trained, precision=TENSORRT_PRECISION, max_batch_size=MAX_BATCH_SIZE
)
print(engine.message)
for command in engine.commands:
    print(command)

# %% [markdown]
# ## Model repository
# Triton serves what it finds in a model repository: one folder per model with its
# `config.pbtxt` and numbered version folders. `model_repository_gke/peoplenet_ir_tlt` is the
# lab's: a tensorrt_plan config for the real engine the steps at the end build (input
# 3x544x960, grids 34x60), not for the small model trained here;
# `model_repository/peoplenet_ir` is the variant this CPU Triton can serve, beside the RGB
# stand-in of notebook 01. Both configs are written with Triton's own protobuf schema.

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
print(lab.repository_tree(ws.model_repository))
print()
print(lab.repository_tree(ws.gke_model_repository))
print()
print(f"{repos.lab_config_path.relative_to(ws.root)}:")
print(repos.lab_config_text)

# %% [markdown]
# ## Upload to GCS and (re)load Triton from `gs://`
# Offline, Triton loads the repository from the emulator's `gs://` URL, must report the model
# ready and answers a smoke inference on two validation frames (pictured below, ground truth
# in white).

# %%
deployment = lab.deploy_from_gcs(
    ws, GCS_MODEL_REPOSITORY, project=GCP_PROJECT_ID, model_name=MODEL_NAME
)
print(deployment.message)
display(lab.folded(deployment.upload_table, f"Uploaded files ({len(deployment.upload_table)})"))

# %%
checks = lab.deploy_checks(onnx, engine, repos, deployment, atol=ONNX_ATOL)
display(lab.table(checks))
_ = lab.record_table(ws, "04_deploy_checks", checks, "Deployment checks (04)")
_ = lab.record_text(
    ws, "04_repository", lab.repository_tree(ws.model_repository), "Model repository (04)"
)
_ = lab.record_text(
    ws, "04_lab_config", repos.lab_config_text, f"{LAB_MODEL_NAME}/config.pbtxt for GKE (04)"
)
if deployment.smoke_images:
    fig = lab.show_overlays(
        deployment.smoke_images,
        deployment.smoke_detections,
        deployment.smoke_config,
        truth=deployment.smoke_truth,
        title=f"Smoke inference: Triton serving {MODEL_NAME} from {deployment.gcs_url}",
    )
    _ = lab.record_figure(ws, "04_smoke_inference", fig, "Smoke inference from gs:// (04)")

# %% [markdown]
# ## The real setup: the IR model on Triton in GKE

# %%
display(lab.show_steps("IR model on Triton in GKE", lab.ir_model_steps(ws)))

# %% [markdown]
# ## What was produced, and where

# %%
ws.update_state(deployed_gcs=deployment.gcs_url)
display(
    lab.table(
        lab.produced_table(
            [onnx.path, ws.export, ws.model_repository, ws.gke_model_repository], ws.root
        )
    )
)
