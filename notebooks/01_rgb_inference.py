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
# # 01 · RGB inference through Triton
#
# **What it does.** Serves a DetectNet_v2 model with Triton, sends RGB images to it with the
# inference client (batched, asynchronous: the lab's `tao_client.py ... --async`), clusters the
# raw grids into boxes with the PeopleNet RGB clustering config (person, bag, face) and shows
# them inline. An ipywidgets browser lets you page through the images and tune each class's
# confidence threshold and DBSCAN eps live.
#
# **How long.** About 2 minutes the first time (the offline stand-in is trained, see below),
# then about 30 seconds: the trained stand-in is cached in the workspace.
#
# **Be aware: the embedded default is not PeopleNet.** PeopleNet needs NGC (and TensorRT on a
# GPU). Offline, the notebook trains a *stand-in*: a tiny DetectNet_v2 (ResNet-10 at a quarter
# width, PeopleNet's three classes and outputs) on 160 **synthetic** daylight
# street frames (coloured buildings, trees, cars; people with clothing colours and skin-tone
# heads, some carrying bags; exact person/bag/face boxes), for under two minutes on the CPU.
# It finds people on held-out synthetic frames (the scores are below), but it
# has **never seen a real photo**: on `grace_hopper.jpg` expect few or odd boxes. That is the
# honest limit of an offline stand-in, not a property of PeopleNet. For real boxes set
# `TRITON_URL` to your GKE Triton serving `peoplenet_tlt`, or `MODEL_REPOSITORY` to a local
# repository with a PeopleNet model Triton can run here.

# %% tags=["parameters"]
# ruff: noqa: E402  (a notebook: imports follow this parameters cell)
WORKSPACE = "runs/lab"
TRITON_URL = None  # None: start a local Triton; real GKE: "34.x.x.x:80" (Istio ingress)
MODEL_REPOSITORY = None  # None: workspace repository with the offline stand-in
MODEL_NAME = "peoplenet_rgb_standin"  # real: "peoplenet_tlt"
MODEL_VERSION = ""  # "" = latest; the lab uses -x 1
PROTOCOL = "http"  # "http" or "grpc"
# None: grace_hopper.jpg + held-out synthetic frames; real: "../inference_images/rgb"
IMAGES_DIR = None
NUM_IMAGES = 4
CLASS_LIST = ("person", "bag", "face")
POSTPROCESSING_CONFIG = None  # None: the shipped clustering_config_peoplenet_rgb.prototxt
BATCH_SIZE = 16

# %%
from IPython.display import display

from cvlab import lab

ws = lab.Workspace(WORKSPACE)
config = lab.clustering_config(POSTPROCESSING_CONFIG or lab.PEOPLENET_RGB_CONFIG, CLASS_LIST)
samples = None if IMAGES_DIR else lab.rgb_sample_frames(ws, NUM_IMAGES)
images = lab.input_images(IMAGES_DIR) if IMAGES_DIR else samples.paths
print(f"{len(images)} images; clustering config: {config.source}")

# %% [markdown]
# ## Serve the model
# With `TRITON_URL = None` the notebook trains the stand-in once (synthetic frames ->
# TAO TFRecords -> tiny DetectNet_v2 -> ONNX, checked against Keras), writes it into the
# workspace's model repository and starts the `tritonserver` binary bundled with
# `nvidia-pytriton` on 127.0.0.1 (free ports, stopped at the end of the notebook).

# %%
server = None
if TRITON_URL is None:
    repository = MODEL_REPOSITORY or lab.ensure_rgb_standin(ws).parent
    standin = ws.state().get("rgb_standin", {})
    if standin and not MODEL_REPOSITORY:
        print(
            f"stand-in: {standin['epochs']} epochs on {standin['num_images']} synthetic frames, "
            f"input {tuple(standin['input_size'])}; validation AP {standin['validation_ap']}"
        )
    server = lab.start_triton(repository)
url = TRITON_URL or (server.http_url if PROTOCOL == "http" else server.grpc_url)
print("Triton:", url, "model:", MODEL_NAME)

# %% [markdown]
# ## Inference, as the lab's client does it
# The same as `cvlab infer IMAGES -m MODEL -b 16 --mode DetectNet_v2 -i http -u URL --async
# --output_path OUT --postprocessing_config FILE --class_list person,bag,face`: KITTI labels go
# to `OUT/infer_labels`, overlays to `OUT/infer_images`. With the server on this machine the
# client hands tensors over through shared memory (`/dev/shm`) instead of the request body;
# against the GKE URL they travel in the request, as in the lab.

# %%
out_dir = ws.outputs / "01_rgb"
result = lab.run_inference(
    url,
    MODEL_NAME,
    images,
    config,
    out_dir,
    batch_size=BATCH_SIZE,
    protocol=PROTOCOL,
    model_version=MODEL_VERSION,
    keep_outputs=True,  # the tuner below re-clusters these: every image is sent once
)
detections = result.detections
display(lab.detections_table(detections))

# %% [markdown]
# Boxes in the config's colours (person green, bag cyan, face red); on the synthetic frames
# the exact ground truth is drawn in thin white. The first image is a real photo the stand-in
# never saw anything like.

# %%
truth = samples.truth if samples else None
fig = lab.show_overlays(images, detections, config, title="RGB inference", truth=truth)
_ = lab.record_figure(
    ws, "01_rgb_overlays", fig, "RGB inference (01): stand-in trained on synthetic frames only"
)

# %% [markdown]
# ## How good is the stand-in? (synthetic frames only)
# TAO's AP (IoU 0.5) per class on the held-out synthetic frames, at the clustering config's
# operating point. The real photo has no ground truth and is not scored. Expect a usable
# person AP; bags and faces are only a few pixels at the stand-in's 256x160 input and a
# minute of training is not enough for them (PeopleNet learns them from many thousands of
# real images at 960x544).

# %%
if samples is not None:
    scored_paths, scored_truth = samples.synthetic_only()
    scored = [d for d, p in zip(detections, images, strict=True) if p in scored_paths]
    rgb_eval = lab.evaluate(scored, scored_truth, CLASS_LIST)
    display(rgb_eval.per_class)
    _ = lab.record_table(
        ws, "01_standin_ap", rgb_eval.per_class, "RGB stand-in AP on synthetic frames (01)"
    )

# %% [markdown]
# ## Browse and tune
# The raw output grids kept by the inference above are re-clustered: moving a slider sends
# nothing to Triton. In a
# headless run the widget is built and the static result below shows the same overlay with a
# lowered person threshold (to show what the sliders do). The table shows the highest
# coverage per class in each image: boxes can only appear where cells exceed the config's
# `coverage_threshold`, and clusters must reach the confidence threshold.

# %%
tuner = lab.threshold_tuner(result, images, config)
display(tuner.widget())
display(lab.coverage_summary(result, config.class_names))

# %%
tuner.set_class("person", dbscan_confidence_threshold=0.05)
print(f"person threshold 0.05: {len(tuner.detections(0))} boxes in {images[0].name}")
_ = lab.show_image(tuner.render(0), title=f"{images[0].name}, person threshold 0.05")

# %%
if server is not None:
    server.stop()

# %% [markdown]
# ## What was produced, and where

# %%
ws.update_state(rgb_outputs=out_dir)
display(
    lab.produced_table(
        [out_dir / "infer_labels", out_dir / "infer_images", ws.rgb_images, ws.model_repository],
        ws.root,
    )
)
