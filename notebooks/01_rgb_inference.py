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
# # 01 · RGB inference through Triton
#
# **What it does.** Serves a DetectNet_v2 people detector with Triton, sends camera frames to
# it as the lab's client does (batched, asynchronous), clusters the raw output grids into
# person, bag and face boxes, scores them against boxes checked by eye and lets you tune each
# class's threshold live.
#
# **How long.** About 30 s on a 2-core laptop (nothing is trained here); the line under the
# imports gives the time the last `make demo` measured.
#
# **Offline, the model is a stand-in for PeopleNet.** PeopleNet comes from NGC and runs as a
# TensorRT engine on a GPU. Offline, Triton serves a *stand-in*: a small DetectNet_v2 with
# PeopleNet's three classes and outputs, trained (once, not in this notebook: its weights ship
# with cvlab) on a real camera video, `vtest.avi` (a fixed camera over a campus plaza, from
# OpenCV's samples), whose frames were labelled by two real detectors (SSDLite for people,
# BlazeFace for faces). The video's last 195 frames were held out: never trained or tuned on.
# So it is judged first on those held-out frames; real photos come after, out of its domain;
# synthetic frames only show bags, which the video lacks. The real setup's steps (PeopleNet on
# Triton in GKE) are at the end.

# %% tags=["parameters"]
WORKSPACE = "runs/lab"
TRITON_URL = None  # None: start a local Triton; real GKE: "34.x.x.x:80" (Istio ingress)
MODEL_REPOSITORY = None  # None: workspace repository with the offline stand-in
MODEL_NAME = "peoplenet_rgb_standin"  # real: "peoplenet_tlt"
MODEL_VERSION = ""  # "" = latest; the lab uses -x 1
PROTOCOL = "http"  # "http" or "grpc"
# None: the stand-in's clustering_config_rgb_standin.prototxt; real PeopleNet:
# lab.PEOPLENET_RGB_CONFIG (the lab's clustering_config_peoplenet_rgb.prototxt)
POSTPROCESSING_CONFIG = None
CLASS_LIST = ("person", "bag", "face")
BATCH_SIZE = 16
STRIP_START = 700  # first frame of the run of consecutive held-out frames
NUM_SHOWN = 4  # held-out frames pictured (every one with truth is scored)

# %%
from IPython.display import display

from cvlab import lab

ws = lab.Workspace(WORKSPACE)
config = lab.clustering_config(POSTPROCESSING_CONFIG or lab.STANDIN_CLUSTERING_CONFIG, CLASS_LIST)
samples = lab.rgb_sample_frames(ws, strip_start=STRIP_START)
images = samples.paths
people = sum(len(t) for t in samples.truth)
print(
    f"{len(samples.scored)} held-out video frames with {people} people checked by eye, "
    f"{len(samples.strip)} consecutive frames, {len(samples.photos)} real photos, "
    f"{len(samples.synthetic)} synthetic frames (bags)"
)
print("clustering config:", str(config.source).rsplit("/", 1)[-1])
print(lab.how_long("01_rgb_inference"))

# %% [markdown]
# ## Serve the model
# With `TRITON_URL = None` the notebook writes the shipped stand-in into the workspace's model
# repository (ONNX run by Triton's Python backend, PeopleNet's tensor names) and starts the
# `tritonserver` binary bundled with `nvidia-pytriton` on 127.0.0.1 (free ports, stopped at the
# end of the notebook). `cvlab export rgb-standin --output DIR` writes the same repository for
# `cvlab triton serve`.

# %%
server = None
if TRITON_URL is None:
    repository = MODEL_REPOSITORY or lab.ensure_rgb_standin(ws).parent
    if not MODEL_REPOSITORY:
        print(lab.standin_summary())
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
scored = samples.group("scored", detections)
strip = samples.group("strip", detections)
photos = samples.group("photos", detections)
synthetic = samples.group("synthetic", detections)

# %% [markdown]
# ## Real frames the model never saw
# Frames from the held-out end of the video. Ground truth (people, checked by eye) in thin
# white, the model's boxes in their class colour (legend under the figure): person green, bag
# cyan, face red.
#
# **The score.** A box's score is the summed coverage of the grid cells clustered into it
# (DetectNet_v2), so scores above 1 are normal; the clustering config's confidence thresholds
# are in the same unit.

# %%
shown = list(range(0, len(samples.scored), max(1, len(samples.scored) // NUM_SHOWN)))[:NUM_SHOWN]
fig = lab.show_overlays(
    [samples.scored[i] for i in shown],
    [scored[i] for i in shown],
    config,
    title="Held-out frames of a real camera video",
    truth=[samples.truth[i] for i in shown],
)
_ = lab.record_figure(ws, "01_rgb_overlays", fig, "RGB model on held-out real video frames (01)")

# %% [markdown]
# ## Where the score comes from: the raw coverage grid
# The model does not output boxes: for every 16x16-pixel cell of its 384x288 input it outputs a
# *coverage* per class (how sure it is that the cell lies on an object; right, brighter = higher)
# and a box per cell. Clustering merges the cells of one person into one box whose score is the
# sum of their coverage, which is why scores above 1 are normal. Notebook 05 shows the same grid
# on a thermal frame, where it stays dark.

# %%
first = shown[0]
fig = lab.show_coverage(
    samples.scored[first],
    [("RGB stand-in", scored[first], samples.group("scored", result.outputs)[first], config)],
    samples.truth[first],
)
_ = lab.record_figure(ws, "01_coverage", fig, "Raw person coverage on a real frame (01)")

# %% [markdown]
# ## How good is it? One figure: person AP on the held-out frames
# **AP** (average precision, TAO's evaluation) is the area under the precision-recall curve,
# where a box is correct when it overlaps a ground-truth person by IoU >= 0.5: 1.0 means every
# person found and no false box. Scored on every 5th held-out frame (each one's people checked
# by eye), people only: the video has no labelled bags, and faces there are a few pixels wide.
# The *teacher* that labelled the training frames (SSDLite, one pass per frame) scores lower on
# the same frames (`cvlab bench standin` prints both): the student learnt from cleaned labels
# (tiles for small people, the video's time to fill gaps) and beats it.
#
# **Two boxes on one person.** DetectNet_v2 can put two boxes on one person: cells at the rim
# of a person predict a box that disagrees with the central cells', and DBSCAN makes a second,
# weaker cluster of them. The stand-in was trained to avoid it (only a person's central cells
# learn its box) and its person threshold was chosen, on its validation frames, among the
# equally good ones as the one with the fewest such pairs; the count below says whether any is
# left (`docs/clustering.md`, "Duplicate boxes on the RGB stand-in").

# %%
rgb_eval = lab.evaluate(scored, samples.truth, ("person",))
ap = lab.ap_table(rgb_eval)
display(lab.table(ap))
_ = lab.record_table(ws, "01_standin_ap", ap, "RGB model person AP on held-out real frames (01)")
print(
    f"person AP on {len(samples.scored)} held-out real frames ({people} people): "
    f"{rgb_eval.ap['person']:.2f}; pairs of boxes on one person: "
    f"{lab.duplicate_pairs(scored, samples.truth)}"
)

# %% [markdown]
# ## Over time: consecutive frames
# Sixteen consecutive held-out frames (1.6 s of video) as an animation: the boxes follow the
# people from frame to frame. The strip under it shows four of them for pages that do not play
# animations.

# %%
gif = lab.strip_gif(samples.strip, strip, config, ws.report / "01_strip.gif")
display(lab.Animation(gif, f"{len(strip)} consecutive held-out frames at half speed (5 frames/s)"))
fig = lab.show_filmstrip(samples.strip, strip, config, title="Consecutive held-out frames")
_ = lab.record_figure(ws, "01_filmstrip", fig, "Consecutive held-out video frames (01)")

# %% [markdown]
# ## Real photos: out of the stand-in's domain
# `messi5.jpg`, `basketball1.png`, `basketball2.png` (OpenCV's samples) and `grace_hopper.jpg`
# (matplotlib's) are real photos with people, taken nothing like the campus camera: close up,
# large people, other light. The stand-in never trained on or was tuned for them; what it finds
# here is shown as it is, without a score. It fails in a telling way: it has only seen people
# 50-150 px tall, seen from above by one camera, so it boxes the man standing in the room in
# one basketball photo (cut at the knees) and part of the footballer, but misses the same man
# in the other photo and the close-ups (Grace Hopper, the player in the foreground), boxes the
# flag beside Grace Hopper instead, and calls some dark patches bags. PeopleNet, trained on many
# thousands of real images, is the model for such photos (the real setup below).

# %%
fig = lab.show_overlays(
    samples.photos,
    photos,
    config,
    title="Real photos: out of domain for a stand-in trained on one campus camera",
)
_ = lab.record_figure(ws, "01_real_photos", fig, "Real photos, out of domain (01)")

# %% [markdown]
# ## Bags, on synthetic frames
# The video has no labelled bags, so the stand-in learnt bags from synthetic daylight frames
# only; two of those (never trained on) show what its bag channel does.

# %%
fig = lab.show_overlays(
    samples.synthetic,
    synthetic,
    config,
    title="Synthetic frames: the stand-in's bag class",
    truth=samples.synthetic_truth,
)
_ = lab.record_figure(ws, "01_synthetic_bags", fig, "Synthetic frames: bags (01)")

# %% [markdown]
# ## Browse and tune
# The raw output grids kept by the inference above are re-clustered: moving a slider sends
# nothing to Triton. Each class has a confidence threshold (in score units, see above) and the
# DBSCAN eps (how far apart cells may be and still form one box).

# %%
tuner = lab.threshold_tuner(result, images, config)
display(tuner.widget(start=0))

# %% [markdown]
# **What the person threshold trades.** Below, the same tuner re-clusters the scored frames at
# a quarter of the config's person threshold, at the config's, and at twice it, and counts
# over all of them: a lower threshold finds a few more people and adds false boxes (precision
# falls), a higher one removes false boxes and loses people (recall falls). The config's
# threshold was chosen on training frames, not on these. (AP, above, sums up every threshold at
# once: it can be high while precision at one threshold is below 1, because false boxes that
# score lower than the true ones barely lower it.)

# %%
steps = lab.show_threshold_steps(tuner, samples.truth, "person", (0.25, 1.0, 2.0), index=shown[-1])
display(lab.table(steps.table))
print(steps.sentence())
_ = lab.record_figure(ws, "01_threshold_steps", steps.figure, "The person threshold's trade (01)")

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
ws.update_state(rgb_outputs=out_dir, rgb_frames_ap=rgb_eval.ap["person"])
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
