"""The lab notebooks' helpers in one namespace: ``from cvlab import lab``.

Every notebook works inside one workspace folder (``runs/lab`` by default). Each step writes
its products to a fixed place in it, and each ``ensure_*`` helper returns that product,
building it (and whatever it needs first) only when it is missing. So notebook 05 can run
alone on a fresh machine: it generates the synthetic FLIR set, prepares it, trains the tiny
model and writes the model repository on the way; run in order, the notebooks reuse what
the previous ones produced.

The helpers live in small modules, one job each:

- :mod:`cvlab.lab.progress`: the notebook set-up (TensorFlow quiet, with :mod:`cvlab.quiet`) and
  progress bars that notebooks save finished;
- :mod:`cvlab.lab.workspace`: the workspace layout, its state file, records for the report;
- :mod:`cvlab.lab.environment`: the environment check and verdict, the NGC download, timings;
- :mod:`cvlab.lab.data`: FLIR source, preparation, ground truth, sample images, statistics;
- :mod:`cvlab.lab.standin`: the offline RGB stand-in and notebook 01's sample frames;
- :mod:`cvlab.lab.inference`: local Triton, the lab's client (one pipeline), clustering configs;
- :mod:`cvlab.lab.widgets`: the image browser and threshold tuner;
- :mod:`cvlab.lab.training`: training, the training curve, the TAO spec and commands;
- :mod:`cvlab.lab.live`: the training curve redrawn after every epoch while training runs;
- :mod:`cvlab.lab.deploy`: ONNX, TensorRT, model repositories, GCS upload, Triton reload;
- :mod:`cvlab.lab.views`: overlays, tables and comparisons shown in the notebooks;
- :mod:`cvlab.lab.real_setup`: the real lab's steps (NGC, TensorRT, gsutil, GKE, FLIR, TAO).

Example:
    >>> from cvlab import lab
    >>> ws = lab.Workspace("runs/lab")      # doctest: +SKIP
    >>> source = lab.ensure_flir_source(ws) # doctest: +SKIP
"""

# ruff: noqa: E402  (the notebook set-up below must run before the other imports)
from __future__ import annotations

# First, before anything loads TensorFlow or tqdm: in a notebook kernel, TensorFlow's start-up
# lines stay out of the notebook and progress bars are saved finished (no effect elsewhere).
from cvlab.lab.progress import setup_notebook

setup_notebook()

# isort: split
from cvlab.cloud.gcs_emulator import GcsEmulator
from cvlab.inference.clustering_config import PEOPLENET_IR_CONFIG, PEOPLENET_RGB_CONFIG
from cvlab.lab.data import (
    PreparedDataset,
    dataset_statistics,
    ensure_flir_source,
    ensure_prepared_dataset,
    evaluation_set,
    input_images,
    prepare_summary,
    read_ground_truth,
    sample_photo,
    tfrecords_dir,
    training_images,
    validation_images,
)
from cvlab.lab.deploy import (
    EMULATOR_MODEL_REPOSITORY,
    Deployment,
    EngineStep,
    IrRepositories,
    OnnxExport,
    deploy_checks,
    deploy_from_gcs,
    ensure_ir_repository,
    ensure_onnx,
    repository_tree,
    tensorrt_step,
)
from cvlab.lab.environment import (
    NgcDownload,
    download_ngc_model,
    environment_table,
    gke_setup_script,
    how_long,
    internet_reachable,
    ngc_cli,
    ngc_download_command,
    verdict_table,
)
from cvlab.lab.inference import (
    clustering_config,
    coverage_summary,
    ir_postprocessing_config,
    rgb_postprocessing_config,
    run_inference,
    start_triton,
    threshold_tuner,
)
from cvlab.lab.real_setup import (
    flir_steps,
    ir_client_steps,
    ir_model_steps,
    rgb_model_steps,
    show_steps,
    tao_steps,
)
from cvlab.lab.standin import RgbSamples, ensure_rgb_standin, rgb_sample_frames
from cvlab.lab.training import (
    TINY_EPOCHS,
    TaoStep,
    TrainedModel,
    ensure_trained_model,
    plot_history,
    record_training_curve,
    write_tao_spec,
)
from cvlab.lab.views import (
    AP_NOTE,
    SCORE_NOTE,
    ThresholdEffect,
    ap_table,
    compare_evaluations,
    conclusion,
    detections_table,
    evaluate,
    folded,
    history_table,
    record_overlay_images,
    show_before_after,
    show_image,
    show_overlays,
    show_pr_curves,
    show_threshold_effect,
    table,
    training_takeaway,
)
from cvlab.lab.workspace import (
    DEFAULT_WORKSPACE,
    IR_MODEL_NAME,
    LAB_IR_MODEL_NAME,
    REPO_ROOT,
    RGB_MODEL_NAME,
    Workspace,
    atomic_write_text,
    dataclass_table,
    produced_table,
    record_figure,
    record_image,
    record_table,
    record_text,
    resolve_workspace_path,
)

__all__ = [
    "AP_NOTE",
    "EMULATOR_MODEL_REPOSITORY",
    "SCORE_NOTE",
    "ThresholdEffect",
    "ap_table",
    "conclusion",
    "deploy_checks",
    "record_text",
    "flir_steps",
    "folded",
    "history_table",
    "how_long",
    "ir_client_steps",
    "ir_model_steps",
    "repository_tree",
    "rgb_model_steps",
    "show_pr_curves",
    "show_steps",
    "show_threshold_effect",
    "table",
    "tao_steps",
    "training_takeaway",
    "verdict_table",
    "PEOPLENET_IR_CONFIG",
    "PEOPLENET_RGB_CONFIG",
    "DEFAULT_WORKSPACE",
    "IR_MODEL_NAME",
    "LAB_IR_MODEL_NAME",
    "REPO_ROOT",
    "RGB_MODEL_NAME",
    "TINY_EPOCHS",
    "Deployment",
    "EngineStep",
    "IrRepositories",
    "GcsEmulator",
    "NgcDownload",
    "OnnxExport",
    "PreparedDataset",
    "RgbSamples",
    "TaoStep",
    "TrainedModel",
    "Workspace",
    "atomic_write_text",
    "clustering_config",
    "compare_evaluations",
    "coverage_summary",
    "dataclass_table",
    "dataset_statistics",
    "deploy_from_gcs",
    "detections_table",
    "download_ngc_model",
    "ensure_flir_source",
    "ensure_ir_repository",
    "ensure_onnx",
    "ensure_prepared_dataset",
    "ensure_rgb_standin",
    "ensure_trained_model",
    "environment_table",
    "gke_setup_script",
    "evaluate",
    "evaluation_set",
    "input_images",
    "internet_reachable",
    "ir_postprocessing_config",
    "ngc_cli",
    "ngc_download_command",
    "plot_history",
    "prepare_summary",
    "produced_table",
    "rgb_sample_frames",
    "threshold_tuner",
    "read_ground_truth",
    "record_figure",
    "record_image",
    "record_overlay_images",
    "record_table",
    "record_training_curve",
    "resolve_workspace_path",
    "rgb_postprocessing_config",
    "run_inference",
    "sample_photo",
    "show_before_after",
    "show_image",
    "show_overlays",
    "start_triton",
    "tensorrt_step",
    "tfrecords_dir",
    "training_images",
    "validation_images",
    "write_tao_spec",
]
