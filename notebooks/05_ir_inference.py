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
# # 05 · IR inference and evaluation: the RGB model vs the retrained IR model
#
# **What it does.** Sends held-out thermal images (the validation fold) to Triton with the
# inference client (the lab's `tao_client.py ... --class_list person --postprocessing_config
# clustering_config_peoplenet_ir.prototxt`), once to the RGB model (before) and once to the
# retrained IR model (after), scores both against the ground truth as TAO does, and shows the
# before/after side by side.
#
# **How long.** About 20 s on a 2-core laptop (the line under the imports gives the last
# `make demo`'s measurement).
#
# **Embedded default.** Both models are served by a local Triton from the workspace's model
# repository. The "RGB model" is notebook 01's offline stand-in for PeopleNet (a tiny
# DetectNet_v2 trained on synthetic *daylight* frames); the IR model is the same tiny
# architecture retrained in notebook 03 on synthetic *thermal* frames. That is the lab's story
# in miniature: a detector trained on visible-light images meets thermal images (bright,
# textureless people on dark backgrounds) and does worse than the model retrained on thermal
# data. Both are trained on synthetic data only, so the numbers say nothing about PeopleNet
# itself; with the real setup (`TRITON_URL` of your GKE Triton, `RGB_MODEL_NAME =
# "peoplenet_tlt"`, `IR_MODEL_NAME = "peoplenet_ir_tlt"`) the comparison is the lab's.

# %% tags=["parameters"]
WORKSPACE = "runs/lab"
TRITON_URL = None  # None: local Triton on the workspace repository; real GKE: "34.x.x.x:80"
PROTOCOL = "http"
IR_MODEL_NAME = "peoplenet_ir"  # real: "peoplenet_ir_tlt"
RGB_MODEL_NAME = "peoplenet_rgb_standin"  # real: "peoplenet_tlt"
IMAGES_DIR = None  # None: the validation fold of notebook 02; real: held-out FLIR images
LABELS_DIR = None  # KITTI ground truth for IMAGES_DIR
IR_POSTPROCESSING_CONFIG = None  # None: the shipped clustering_config_peoplenet_ir.prototxt
IR_CONFIDENCE_THRESHOLD = None  # None: the config's; the tiny model's scores are lower
AP_MODE = "INTEGRATE"  # TAO's "INTEGRATE" or "SAMPLE" (11-point)
BATCH_SIZE = 16
NUM_OVERLAYS = 4

# %%
from IPython.display import display

from cvlab import lab

ws = lab.Workspace(WORKSPACE)
images, truth = lab.evaluation_set(ws, IMAGES_DIR, LABELS_DIR)
print(f"{len(images)} held-out thermal images, {sum(len(t) for t in truth)} ground-truth people")
print(lab.how_long("05_ir_inference"))

# %% [markdown]
# ## Serve both models

# %%
server = None
if TRITON_URL is None:
    lab.ensure_ir_repository(ws)
    lab.ensure_rgb_standin(ws)
    server = lab.start_triton(ws.model_repository)
url = TRITON_URL or (server.http_url if PROTOCOL == "http" else server.grpc_url)
print("Triton:", url)

# %% [markdown]
# ## Before: the RGB model on thermal frames
# The RGB model learned people from a daylight camera (offline: the stand-in trained on a real
# campus video, notebook 01); on thermal frames it sees grey, textureless silhouettes (the
# domain gap). It has three output classes; only `person` is
# scored, exactly like the IR model (same images, same ground truth).

# %%
rgb_config = lab.rgb_postprocessing_config(IR_CONFIDENCE_THRESHOLD)
rgb_run = lab.run_inference(
    url,
    RGB_MODEL_NAME,
    images,
    rgb_config,
    ws.outputs / "05_rgb",
    batch_size=BATCH_SIZE,
    protocol=PROTOCOL,
    keep_outputs=True,
)
rgb_dets = rgb_run.detections

# %% [markdown]
# ## After: the retrained IR model

# %%
ir_config = lab.ir_postprocessing_config(ws, IR_POSTPROCESSING_CONFIG, IR_CONFIDENCE_THRESHOLD)
ir_run = lab.run_inference(
    url,
    IR_MODEL_NAME,
    images,
    ir_config,
    ws.outputs / "05_ir",
    batch_size=BATCH_SIZE,
    protocol=PROTOCOL,
    keep_outputs=True,
)
ir_dets = ir_run.detections

# %% [markdown]
# ## What each model sees, before any AP
# Left: the boxes after clustering (ground truth in white). Right: the model's raw `output_cov`
# for `person`, one value per 16x16 cell. The clustering groups neighbouring cells above the
# coverage threshold, and a box's score is the **sum** of its cells' coverage (so scores above
# 1 are normal). Where the RGB model's map stays dark on a thermal person, no threshold can
# bring that person back.

# %%
fig = lab.show_coverage(
    images[0],
    [
        ("RGB model", rgb_dets[0], rgb_run.outputs[0], rgb_config),
        ("IR model", ir_dets[0], ir_run.outputs[0], ir_config),
    ],
    truth[0],
)
_ = lab.record_figure(ws, "05_coverage", fig, "Raw person coverage on one thermal frame (05)")

# %% [markdown]
# ## One figure for both: person AP on the held-out thermal frames
# **AP** (average precision, TAO's evaluation) is the area under the precision-recall curve,
# where a box is correct when it overlaps a ground-truth person by IoU >= 0.5: 1.0 means every
# person found and no false box. Only boxes above the clustering config's confidence threshold
# are scored (a box's score is the summed coverage of its cluster, so above 1 is normal), so
# each curve stops at that operating point; lower `IR_CONFIDENCE_THRESHOLD` to trade precision
# for recall.

# %%
rgb_eval = lab.evaluate(rgb_dets, truth, ("person",), mode=AP_MODE)
ir_eval = lab.evaluate(ir_dets, truth, ("person",), mode=AP_MODE)
evaluations = {"RGB model": rgb_eval, "IR model": ir_eval}
comparison = lab.compare_evaluations(evaluations)
_ = lab.record_table(
    ws, "05_ap_comparison", comparison, "Person AP on thermal images: RGB vs IR (05)"
)
display(lab.table(comparison))
fig = lab.show_pr_curves(evaluations, "person")
_ = lab.record_figure(ws, "05_pr_curves", fig, "Precision-recall, RGB model vs IR model (05)")

# %% [markdown]
# ## The domain gap in one chart
# The same RGB model on the RGB frames of notebook 01, then on thermal frames; then the model
# retrained on thermal frames. Under each bar: what it found of the ground-truth people.

# %%
fig = lab.show_domain_gap(
    rgb_eval,
    ir_eval,
    lab.rgb_frames_ap(ws),
    rgb_frames="real video frames",
    rgb_frames_note="held out, notebook 01",
)
_ = lab.record_figure(
    ws,
    "05_domain_gap",
    fig,
    "Person AP: the RGB model on RGB and thermal frames, the IR model (05)",
)

# %% [markdown]
# ## Before / after on the same frames
# Ground truth in thin white, each model's person boxes in green; each picture's title says
# what the model found of the people there.

# %%
fig = lab.show_before_after(
    images[:NUM_OVERLAYS],
    rgb_dets,
    ir_dets,
    truth,
    rgb_config,
    ir_config,
    before_ap=rgb_eval.ap["person"],
    after_ap=ir_eval.ap["person"],
)
_ = lab.record_figure(
    ws,
    "05_before_after",
    fig,
    f"Before: RGB model, AP {rgb_eval.ap['person']:.2f} | "
    f"After: IR model, AP {ir_eval.ap['person']:.2f} (held-out thermal frames, 05)",
)

# %%
display(lab.conclusion(rgb_eval, ir_eval, offline=TRITON_URL is None))

# %% [markdown]
# ## Two exercises
# **1. Lower the IR threshold: predict the curve.** Set `IR_CONFIDENCE_THRESHOLD` to a tenth of
# the config's and rerun from "After". What happens to the IR model's precision-recall curve,
# and to its AP?
#
# <details><summary>Answer</summary>
#
# The curve gets longer: boxes below the old threshold are now scored, so it reaches further to
# the right (higher recall) and ends lower (more false boxes). The part of the curve that was
# there does not move, because the extra boxes all rank below the old ones. So the AP can only
# stay the same or grow: it is the area under the curve, and the curve only gained a tail. What
# you pay is in the boxes shown to a user: more false ones.
# </details>
#
# **2. Why does the RGB model fail on thermal frames?** Look at the coverage maps above: is the
# problem its threshold, or what it sees?
#
# <details><summary>Answer</summary>
#
# What it sees. Its `output_cov` stays low on thermal people (it learned people as coloured
# clothes under skin-tone heads), so no cluster reaches the threshold, and lowering it far
# enough to keep them would let through the false boxes too. Retraining on thermal frames
# changes the map itself: the IR model's cells light up on the people.
# </details>

# %%
if server is not None:
    server.stop()

# %% [markdown]
# ## The real setup: both models on Triton in GKE
# Notebooks 01 and 04 put `peoplenet_tlt` and `peoplenet_ir_tlt` into the bucket Triton on GKE
# reads; the lab's client then scores thermal frames against either of them.

# %%
display(lab.show_steps("IR inference against the GKE Triton", lab.ir_client_steps()))

# %% [markdown]
# ## What was produced, and where

# %%
ws.update_state(ir_ap=float(ir_eval.mean_ap), rgb_ap=float(rgb_eval.mean_ap))
display(
    lab.table(
        lab.produced_table(
            [
                ws.outputs / "05_ir",
                ws.outputs / "05_rgb",
                ws.report / "tables" / "05_ap_comparison.csv",
            ],
            ws.root,
        )
    )
)
