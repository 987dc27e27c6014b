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
from cvlab import lazy_exports
from cvlab.lab.progress import setup_notebook

setup_notebook()

# The helpers, imported on first use (``lab.ensure_onnx`` imports cvlab.lab.deploy then), so
# ``import cvlab.lab`` (and every ``cvlab`` command, whose parser names ``lab demo``) stays fast.
_EXPORTS: dict[str, str] = {
    "GcsEmulator": "cvlab.cloud.gcs_emulator",
    "PEOPLENET_IR_CONFIG": "cvlab.inference.clustering_config",
    "PEOPLENET_RGB_CONFIG": "cvlab.inference.clustering_config",
    "STANDIN_CLUSTERING_CONFIG": "cvlab.export.rgb_standin",
    "PreparedDataset": "cvlab.lab.data",
    "dataset_statistics": "cvlab.lab.data",
    "ensure_flir_source": "cvlab.lab.data",
    "ensure_prepared_dataset": "cvlab.lab.data",
    "evaluation_set": "cvlab.lab.data",
    "input_images": "cvlab.lab.data",
    "prepare_summary": "cvlab.lab.data",
    "read_ground_truth": "cvlab.lab.data",
    "sample_photo": "cvlab.lab.data",
    "tfrecords_dir": "cvlab.lab.data",
    "training_images": "cvlab.lab.data",
    "validation_images": "cvlab.lab.data",
    "EMULATOR_MODEL_REPOSITORY": "cvlab.lab.deploy",
    "Deployment": "cvlab.lab.deploy",
    "EngineStep": "cvlab.lab.deploy",
    "IrRepositories": "cvlab.lab.deploy",
    "OnnxExport": "cvlab.lab.deploy",
    "deploy_checks": "cvlab.lab.deploy",
    "deploy_from_gcs": "cvlab.lab.deploy",
    "ensure_ir_repository": "cvlab.lab.deploy",
    "ensure_onnx": "cvlab.lab.deploy",
    "repository_tree": "cvlab.lab.deploy",
    "tensorrt_step": "cvlab.lab.deploy",
    "NgcDownload": "cvlab.lab.environment",
    "download_ngc_model": "cvlab.lab.environment",
    "environment_table": "cvlab.lab.environment",
    "gke_setup_script": "cvlab.lab.environment",
    "how_long": "cvlab.lab.environment",
    "timings_table": "cvlab.lab.environment",
    "internet_reachable": "cvlab.lab.environment",
    "ngc_cli": "cvlab.lab.environment",
    "ngc_download_command": "cvlab.lab.environment",
    "verdict_table": "cvlab.lab.environment",
    "clustering_config": "cvlab.lab.inference",
    "coverage_summary": "cvlab.lab.inference",
    "ir_postprocessing_config": "cvlab.lab.inference",
    "rgb_postprocessing_config": "cvlab.lab.inference",
    "run_inference": "cvlab.lab.inference",
    "start_triton": "cvlab.lab.inference",
    "threshold_tuner": "cvlab.lab.inference",
    "flir_steps": "cvlab.lab.real_setup",
    "ir_client_steps": "cvlab.lab.real_setup",
    "ir_model_steps": "cvlab.lab.real_setup",
    "lab_steps": "cvlab.lab.real_setup",
    "rgb_model_steps": "cvlab.lab.real_setup",
    "show_steps": "cvlab.lab.real_setup",
    "tao_steps": "cvlab.lab.real_setup",
    "RgbSamples": "cvlab.lab.standin",
    "duplicate_pairs": "cvlab.bench.standin",
    "ensure_rgb_standin": "cvlab.lab.standin",
    "rgb_sample_frames": "cvlab.lab.standin",
    "standin_summary": "cvlab.lab.standin",
    "TINY_EPOCHS": "cvlab.lab.training",
    "TaoStep": "cvlab.lab.training",
    "TrainedModel": "cvlab.lab.training",
    "ensure_trained_model": "cvlab.lab.training",
    "plot_history": "cvlab.lab.training",
    "record_training_curve": "cvlab.lab.training",
    "write_tao_spec": "cvlab.lab.training",
    "AP_NOTE": "cvlab.lab.views",
    "SCORE_NOTE": "cvlab.lab.views",
    "ap_table": "cvlab.lab.views",
    "compare_evaluations": "cvlab.lab.views",
    "conclusion": "cvlab.lab.views",
    "detections_table": "cvlab.lab.views",
    "evaluate": "cvlab.lab.views",
    "folded": "cvlab.lab.views",
    "history_table": "cvlab.lab.views",
    "record_overlay_images": "cvlab.lab.views",
    "rgb_frames_ap": "cvlab.lab.views",
    "show_before_after": "cvlab.lab.views",
    "pipeline_figure": "cvlab.viz.plots",
    "show_coverage": "cvlab.lab.views",
    "show_domain_gap": "cvlab.lab.views",
    "show_image": "cvlab.lab.views",
    "show_overlays": "cvlab.lab.views",
    "show_filmstrip": "cvlab.lab.views",
    "show_threshold_steps": "cvlab.lab.views",
    "strip_gif": "cvlab.lab.views",
    "Animation": "cvlab.lab.views",
    "show_pr_curves": "cvlab.lab.views",
    "table": "cvlab.lab.views",
    "training_takeaway": "cvlab.lab.views",
    "DEFAULT_WORKSPACE": "cvlab.lab.workspace",
    "IR_MODEL_NAME": "cvlab.lab.workspace",
    "LAB_IR_MODEL_NAME": "cvlab.lab.workspace",
    "REPO_ROOT": "cvlab.lab.workspace",
    "RGB_MODEL_NAME": "cvlab.lab.workspace",
    "Workspace": "cvlab.lab.workspace",
    "atomic_write_text": "cvlab.lab.workspace",
    "dataclass_table": "cvlab.lab.workspace",
    "produced_table": "cvlab.lab.workspace",
    "record_figure": "cvlab.lab.workspace",
    "record_image": "cvlab.lab.workspace",
    "record_table": "cvlab.lab.workspace",
    "record_text": "cvlab.lab.workspace",
    "resolve_workspace_path": "cvlab.lab.workspace",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "AP_NOTE",
    "EMULATOR_MODEL_REPOSITORY",
    "SCORE_NOTE",
    "ap_table",
    "conclusion",
    "deploy_checks",
    "record_text",
    "flir_steps",
    "folded",
    "history_table",
    "how_long",
    "timings_table",
    "ir_client_steps",
    "ir_model_steps",
    "lab_steps",
    "repository_tree",
    "rgb_model_steps",
    "show_pr_curves",
    "show_steps",
    "table",
    "tao_steps",
    "training_takeaway",
    "verdict_table",
    "PEOPLENET_IR_CONFIG",
    "PEOPLENET_RGB_CONFIG",
    "STANDIN_CLUSTERING_CONFIG",
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
    "duplicate_pairs",
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
    "standin_summary",
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
    "rgb_frames_ap",
    "show_before_after",
    "pipeline_figure",
    "show_coverage",
    "show_domain_gap",
    "show_image",
    "show_overlays",
    "show_filmstrip",
    "show_threshold_steps",
    "strip_gif",
    "Animation",
    "start_triton",
    "tensorrt_step",
    "tfrecords_dir",
    "training_images",
    "validation_images",
    "write_tao_spec",
]
