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
# # 03 · Retrain DetectNet_v2 on thermal images
#
# **What it does.** The lab retrains PeopleNet on FLIR with TAO (`detectnet_v2 train`, ResNet-34,
# 60 epochs on 8 GPUs, ~72% mAP). This notebook (1) writes that TAO training spec for your
# TFRecords and prints the exact TAO commands, and (2) trains the same network family with
# cvlab's TensorFlow trainer, which runs anywhere: TAO-style targets, loss and learning-rate
# schedule, checkpoints, a loss/mAP curve.
#
# **How long.** About 2 minutes on a 2-core laptop on the embedded default (a tiny ResNet-10
# on the CPU; the line under the imports gives the last `make demo`'s measurement). The real
# setup (`MODEL_CONFIG = "peoplenet"`, ResNet-34 at 960x544, 60 epochs) needs GPUs.
#
# **Embedded default.** Trains on the synthetic thermal TFRecords of notebook 02 (made here if
# missing). The tiny model is for learning the workflow, not for deployment.

# %% tags=["parameters"]
WORKSPACE = "runs/lab"
MODEL_CONFIG = "tiny"  # "tiny" (CPU, minutes) or "peoplenet" (ResNet-34, 960x544: GPUs)
EPOCHS = None  # None: the trainer's quick default for "tiny"; the lab: 60
BATCH_SIZE = None  # None: the trainer's default; the lab: 24 per GPU
TAO_EPOCHS = 60  # written into the TAO spec, as in the lab
TAO_GPUS = 8
TAO_KEY = "tlt_encode"  # the lab's model key (public; not a credential)
FORCE_RETRAIN = True  # False: reuse a finished model in the workspace
# Where training starts (TAO's model_config.pretrained_model_file): "rgb_standin" = the offline
# RGB stand-in's weights (as the lab starts from PeopleNet's); a plain Keras .hdf5 (e.g. NGC's
# unencrypted trainable PeopleNet for "peoplenet"); None: random initialisation.
PRETRAINED_WEIGHTS = "rgb_standin"

# %%
from IPython.display import display

from cvlab import lab

ws = lab.Workspace(WORKSPACE)
prepared = lab.ensure_prepared_dataset(ws)
print("TFRecords:", prepared.tfrecords_pattern)
print("images:   ", prepared.images)
print(lab.how_long("03_retrain"))

# %% [markdown]
# ## The TAO path: training spec and commands
# The spec is written with TAO's own protobuf schema (validated by parsing it back). With TAO
# installed you can run the printed commands as they are.

# %%
tao = lab.write_tao_spec(ws, prepared, num_epochs=TAO_EPOCHS, key=TAO_KEY, gpus=TAO_GPUS)
print("training spec:", tao.spec_path)
print("TAO found" if tao.available else "TAO not found here: the commands are printed, not run")
for command in tao.commands:
    print(command)

# %%
display(lab.show_steps("TAO on a GPU machine", lab.tao_steps()))

# %% [markdown]
# ## Train with cvlab's TensorFlow trainer
# One progress bar for the run (epoch, loss and the last validation AP in its text) and a
# loss/AP curve redrawn after every epoch (validation eight times per run, enough to see the
# AP level off); checkpoints (resumed when the notebook is re-run with
# `FORCE_RETRAIN = False`), TensorBoard logs and a metrics CSV in the training folder.

# %% [markdown]
# **Transfer learning, as in the lab.** The lab retrains from PeopleNet's weights; offline,
# training starts from the RGB stand-in's (notebook 01's model, trained on a real camera
# video): its backbone is loaded by layer name and the heads start fresh, as TAO does with
# `pretrained_model_file`. The line printed first says how many layers were loaded;
# `cvlab bench train` compares this start with random initialisation.

# %%
trained = lab.ensure_trained_model(
    ws,
    prepared,
    config=MODEL_CONFIG,
    epochs=EPOCHS,
    batch_size=BATCH_SIZE,
    force=FORCE_RETRAIN,
    live_plot=True,
    pretrained_weights=PRETRAINED_WEIGHTS,
)

# %%
_ = lab.record_training_curve(ws, trained.history)
display(lab.table(lab.history_table(trained.history)))
display(lab.training_takeaway(trained.history))

# %% [markdown]
# **Reading the curve.** The loss falling on the log scale means the network is fitting the
# thermal frames. The total lies *below* the coverage term because it is the weighted sum of
# the terms (TAO's cost weights, `w_person_cov` and `w_person_bbox` in the metrics CSV: here
# about 0.02 and 0.98), not another quantity.
# The validation AP (right) is what matters: it is measured on held-out frames the network
# never trained on, and it levels off when more epochs stop helping. The footnote gives the
# same AP in TAO's convention (`detectnet_v2 evaluate` rounds box corners and counts pixels
# +1), a hundredth or two away. Notebook 05 scores the finished model the same way against the
# RGB model, on the same held-out frames.

# %% [markdown]
# ## What was produced, and where

# %%
display(
    lab.table(lab.produced_table([trained.model_path, trained.output_dir, tao.spec_path], ws.root))
)
