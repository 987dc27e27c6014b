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
# **What it does.** Serves a DetectNet_v2 detector with Triton, sends RGB frames to it as the
# lab's client does (batched, asynchronous), clusters the raw output grids into person, bag and
# face boxes with PeopleNet's RGB clustering config, scores them against the ground truth and
# lets you tune each class's threshold live.
#
# **How long.** The line under the imports gives the time the last `make demo` measured (the
# first run trains the stand-in; later runs reuse it from the workspace).
#
# **Offline, the model is a stand-in, not PeopleNet.** PeopleNet comes from NGC and runs as a
# TensorRT engine on a GPU. Offline, this notebook trains a *stand-in*: a tiny DetectNet_v2
# with PeopleNet's three classes and outputs, trained for a couple of minutes on synthetic
# daylight street frames (people with clothing colours and skin-tone faces, some with bags).
# So it is shown first where it can be judged, on held-out synthetic frames with exact ground
# truth; a real photo comes after, as what it is for this model: out of its domain. The real
# setup's steps (PeopleNet on Triton in GKE) are at the end.

# %% tags=["parameters"]
# ruff: noqa: E402  (a notebook: imports follow this parameters cell)
WORKSPACE = "runs/lab"
TRITON_URL = None  # None: start a local Triton; real GKE: "34.x.x.x:80" (Istio ingress)
MODEL_REPOSITORY = None  # None: workspace repository with the offline stand-in
MODEL_NAME = "peoplenet_rgb_standin"  # real: "peoplenet_tlt"
MODEL_VERSION = ""  # "" = latest; the lab uses -x 1
PROTOCOL = "http"  # "http" or "grpc"
# None: held-out synthetic frames + grace_hopper.jpg; real: "../inference_images/rgb"
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
# held-out synthetic frames (with ground truth) first; real photos after
scored = [i for i in range(len(images)) if samples and samples.synthetic[i]]
photos = [i for i in range(len(images)) if i not in scored]
print(f"{len(scored)} synthetic frames and {len(photos)} real photos")
print("clustering config:", str(config.source).rsplit("/", 1)[-1])
print(lab.how_long("01_rgb_inference"))

# %% [markdown]
# ## Serve the model
# With `TRITON_URL = None` the notebook trains the stand-in once (synthetic frames -> TAO
# TFRecords -> tiny DetectNet_v2 -> ONNX, checked against Keras), writes it into the
# workspace's model repository and starts the `tritonserver` binary bundled with
# `nvidia-pytriton` on 127.0.0.1 (free ports, stopped at the end of the notebook). The
# training bar's mAP is the trainer's own running check; the accuracy to read is the AP table
# further down.

# %%
server = None
if TRITON_URL is None:
    repository = MODEL_REPOSITORY or lab.ensure_rgb_standin(ws).parent
    standin = ws.state().get("rgb_standin", {})
    if standin and not MODEL_REPOSITORY:
        print(
            f"stand-in: tiny DetectNet_v2, {standin['epochs']} epochs on "
            f"{standin['num_images']} synthetic frames, input {tuple(standin['input_size'])}"
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
# against the GKE URL they travel in the request, as in the lab. Each image is sent once.

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
display(lab.table(lab.detections_table(detections)))

# %% [markdown]
# ## Detections on held-out synthetic street frames
# Ground truth in thin white, the model's boxes in their class colour (legend under the
# figure): person green, bag cyan, face red.
#
# **The score.** A box's score is the summed coverage of the grid cells clustered into it
# (DetectNet_v2), so scores above 1 are normal; the clustering config's confidence thresholds
# are in the same unit (person 0.9, bag 0.9, face 0.7 here).

# %%
shown = scored or list(range(len(images)))
fig = lab.show_overlays(
    [images[i] for i in shown],
    [detections[i] for i in shown],
    config,
    title="Held-out synthetic frames" if scored else "RGB inference",
    truth=[samples.truth[i] for i in shown] if scored else None,
)
_ = lab.record_figure(
    ws, "01_rgb_overlays", fig, "RGB model on held-out synthetic street frames (01)"
)

# %% [markdown]
# ## How good is it? One figure: AP on the held-out synthetic frames
# **AP** (average precision, TAO's evaluation) is the area under a class's precision-recall
# curve, where a box is correct when it overlaps a ground-truth box of its class by IoU >= 0.5:
# 1.0 means every object found and no false box. Scored at the clustering config's thresholds,
# on the synthetic frames only (the real photo has no ground truth).

# %%
if scored:
    rgb_eval = lab.evaluate(
        [detections[i] for i in scored], [samples.truth[i] for i in scored], CLASS_LIST
    )
    ap = lab.ap_table(rgb_eval)
    display(lab.table(ap))
    _ = lab.record_table(ws, "01_standin_ap", ap, "RGB model AP on held-out synthetic frames (01)")
    print(f"person AP on {len(scored)} held-out synthetic frames: {rgb_eval.ap['person']:.2f}")

# %% [markdown]
# ## A real photo: out of domain for the offline stand-in
# `grace_hopper.jpg` (it ships with matplotlib) is a real photo; the stand-in has only ever
# seen synthetic frames, so what it finds here says nothing about PeopleNet, which was trained
# on many thousands of real images. With the real setup (`TRITON_URL`, `MODEL_NAME =
# "peoplenet_tlt"`) this is where PeopleNet's boxes appear.

# %%
if photos and scored:
    fig = lab.show_overlays(
        [images[i] for i in photos],
        [detections[i] for i in photos],
        config,
        title="Real photo: out of domain for a stand-in trained on synthetic frames",
        ncols=1,
    )
    _ = lab.record_figure(ws, "01_real_photo", fig, "Real photo, out of domain (01)")

# %% [markdown]
# ## Browse and tune
# The raw output grids kept by the inference above are re-clustered: moving a slider sends
# nothing to Triton. Each class has a confidence threshold (in score units, see above) and the
# DBSCAN eps (how far apart cells may be and still form one box). Below the widget, the same
# tuner shows what moving the person threshold does, so the effect is visible in a saved copy.

# %%
tuner = lab.threshold_tuner(result, images, config)
display(tuner.widget(start=shown[0]))

# %%
effect = lab.show_threshold_effect(
    tuner, "person", indices=scored or None, truth=samples.truth if samples else None
)
print(effect.sentence())
if effect.figure is not None:
    _ = lab.record_figure(
        ws, "01_threshold_effect", effect.figure, "Moving the person threshold (01)"
    )

# %%
if server is not None:
    server.stop()

# %% [markdown]
# ## The real setup: PeopleNet on Triton in GKE
# The lab's steps for the real model (on a GPU machine with the TAO container, then Google
# Cloud); `00_setup` wrote the GKE cluster commands.

# %%
display(lab.show_steps("RGB PeopleNet on Triton in GKE", lab.rgb_model_steps(ws)))

# %% [markdown]
# ## What was produced, and where

# %%
ws.update_state(rgb_outputs=out_dir)
display(
    lab.table(
        lab.produced_table(
            [
                out_dir / "infer_labels",
                out_dir / "infer_images",
                ws.rgb_images,
                ws.model_repository,
            ],
            ws.root,
        )
    )
)
