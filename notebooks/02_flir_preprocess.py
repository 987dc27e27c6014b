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
# # 02 · FLIR thermal dataset → KITTI → resized images → TFRecords
#
# **What it does.** The lab's `ir2kitti_preprocess` step: reads the FLIR ADAS annotations (COCO
# JSON, v1.3 or v2 layout, detected automatically), keeps the `person` class (as PeopleNet IR),
# writes one KITTI label file per image, resizes the thermal images to the training size
# (960x544, 3 channels) and writes TFRecords in TAO `detectnet_v2 dataset_convert`'s exact
# schema, plus the matching dataset_convert spec. Then it plots dataset statistics and shows a
# few ground-truth boxes.
#
# **How long.** About 15 s on a 2-core laptop on the embedded default (the line under the
# imports gives the last `make demo`'s measurement); the real FLIR download (~14,000 thermal
# images) takes a few minutes more.
#
# **Embedded default.** With `FLIR_ROOT = None` a synthetic dataset is generated in the real
# FLIR on-disk layout (warm person-shaped figures on cool cluttered backgrounds, with exact
# boxes), so the same code runs unchanged on the real download.

# %% tags=["parameters"]
WORKSPACE = "runs/lab"
FLIR_ROOT = None  # None: synthetic; real: "/data/FLIR_ADAS_1_3" or "/data/FLIR_ADAS_v2"
SYNTHETIC_LAYOUT = "v2"  # "v1" (FLIR ADAS 1.3) or "v2"
NUM_SYNTHETIC_IMAGES = 120
CLASSES = ("person",)  # PeopleNet IR; e.g. ("person", "car", "bicycle")
OUTPUT_SIZE = (960, 544)  # training size (width, height), as in the lab
VAL_SPLIT = 20  # percent of images in the validation fold (fold 0); the lab uses 10
NUM_GT_OVERLAYS = 4

# %%
from IPython.display import display

from cvlab import lab

ws = lab.Workspace(WORKSPACE)
source = lab.ensure_flir_source(
    ws, FLIR_ROOT, layout=SYNTHETIC_LAYOUT, num_images=NUM_SYNTHETIC_IMAGES
)
print("FLIR dataset:", source)
print(lab.how_long("02_flir_preprocess"))

# %% [markdown]
# ## Prepare: KITTI labels, resized images, TFRecords
# Resumable (finished images are skipped) and atomic; the report counts what was kept,
# clipped or dropped.

# %%
prepared = lab.ensure_prepared_dataset(
    ws, source, classes=CLASSES, output_size=OUTPUT_SIZE, val_split=VAL_SPLIT, force=True
)
display(lab.table(lab.prepare_summary(prepared)))

# %% [markdown]
# ## Dataset statistics (read back from the TFRecords)

# %%
stats, fig = lab.dataset_statistics(prepared)
display(lab.table(stats, digits=1))
_ = lab.record_figure(ws, "02_dataset_stats", fig, "Dataset statistics (02, from the TFRecords)")

# %% [markdown]
# ## A few ground-truth boxes (KITTI labels on the resized images)
# Training frames, in white as in every notebook (the held-out validation frames are kept for
# notebook 05).

# %%
sample = lab.training_images(prepared)[:NUM_GT_OVERLAYS]
truth = lab.read_ground_truth(prepared.labels, sample, prepared.class_names)
fig = lab.show_overlays(
    sample, [None] * len(sample), None, title="Ground truth (KITTI labels)", truth=truth
)
_ = lab.record_figure(ws, "02_ground_truth", fig, "Ground truth on prepared images (02)")

# %% [markdown]
# ## The real setup: the FLIR ADAS download

# %%
display(lab.show_steps("FLIR ADAS thermal dataset", lab.flir_steps()))

# %% [markdown]
# ## What was produced, and where
# `dataset_convert` spec: a TAO user can regenerate the TFRecords with
# `detectnet_v2 dataset_convert -d <spec> -o <output prefix>`.

# %%
display(
    lab.table(
        lab.produced_table(
            [source, prepared.images, prepared.labels, lab.tfrecords_dir(prepared)], ws.root
        )
    )
)
