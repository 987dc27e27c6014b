"""The lab's real-setup steps (NGC, TensorRT, ``gsutil``, Triton on GKE, the ingress IP, the
FLIR download, the TAO container), shown in the notebooks beside the offline ones.

Each notebook shows the part of the real lab it stands in for, as numbered steps with the exact
commands (built by the same helpers as ``cvlab``'s command line, so they stay in one place):
:func:`rgb_model_steps` (notebook 01), :func:`flir_steps` (02), :func:`tao_steps` (03),
:func:`ir_model_steps` (04) and :func:`ir_client_steps` (05). Paths inside ``/tlt`` are the
lab's, in the TAO container; every file a command reads is written by an earlier step or, for
the two ``config.pbtxt`` files, by cvlab into the workspace.

Example:
    >>> steps = triton_on_gke_steps("gs://my-bucket/tlt/triton-model")
    >>> [s.title for s in steps]
    ['Deploy Triton on GKE', 'Find the Istio ingress IP']
    >>> "kubectl apply -f triton.yaml" in steps[0].commands
    True
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvlab.detectnet import PEOPLENET_INPUT_SIZE
from cvlab.lab.workspace import LAB_IR_MODEL_NAME, Workspace

#: Where the lab's GKE Triton reads its models from (replace with your bucket).
EXAMPLE_BUCKET = "gs://my-bucket/tlt/triton-model"
#: The lab's RGB PeopleNet on NGC and the files the TAO container makes from it.
NGC_PEOPLENET = "nvidia/tao/peoplenet:unpruned_v2.1"
PEOPLENET_DIR = "/tlt/models/tlt_peoplenet_vunpruned_v2.1"
#: Google Cloud pages the lab uses.
MARKETPLACE_TRITON = (
    "https://console.cloud.google.com/marketplace/details/nvidia-ngc-public/triton-inference-server"
)
FLIR_DOWNLOAD_PAGE = "https://www.flir.com/oem/adas/adas-dataset-form/"
#: NVIDIA's end-to-end frames per second of the TAO pretrained models (PeopleNet among them)
#: per GPU, A100 PCIe included
DEEPSTREAM_PERFORMANCE = (
    "https://docs.nvidia.com/metropolis/deepstream/6.0.1/dev-guide/text/DS_Performance.html"
)
TAO_CONTAINER = "nvcr.io/nvidia/tlt-streamanalytics:v3.0-py3"


@dataclass
class Step:
    """One real-setup step: a title, a sentence and the commands (bash lines)."""

    title: str
    text: str
    commands: list[str] = field(default_factory=list)


def steps_markdown(heading: str, steps: list[Step]) -> str:
    """Numbered Markdown steps, each a paragraph followed by its bash code block."""
    parts = [f"#### {heading}"]
    for i, step in enumerate(steps, 1):
        parts.append(f"**{i}. {step.title}.** {step.text}")
        if step.commands:
            parts.append("```bash\n" + "\n".join(step.commands) + "\n```")
    return "\n\n".join(parts)


def _inline_html(text: str) -> str:
    """The Markdown of a step's sentence (links, ``code``, **bold**) as HTML."""
    import html
    import re

    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r"<a href='\2'>\1</a>", out)


#: Inline style of a command block: copyable code wherever the HTML lands (a notebook output,
#: whose own style would wrap it mid-word like log text, an exported page, the report).
CODE_BLOCK_STYLE = (
    "font-family: var(--jp-code-font-family, monospace), monospace; font-size: 13px; "
    "line-height: 1.5; background: #f3f4f6; color: #1f2328; border: 1px solid #d0d7de; "
    "border-radius: 4px; padding: .55em .8em; margin: .3em 0 1.1em; overflow-x: auto; "
    "white-space: pre; word-break: normal; overflow-wrap: normal; flex: 1 1 auto; min-width: 0"
)

#: ... and of the code inside it (pages style ``code`` as wrapping inline text).
_CODE_STYLE = "white-space: pre; font: inherit; background: none; color: inherit; padding: 0"

#: The row holding a block and, where scripts run, its copy button (beside it, never over it).
_ROW_STYLE = "display: flex; align-items: flex-start; gap: .5em"

#: Adds a "Copy" button beside each command block of its own output (or page). The button is
#: made by this script, not written in the HTML: where scripts do not run (JupyterLab sanitizes
#: an untrusted output: it keeps a ``<button>`` but drops ``<script>`` and ``onclick``) the
#: block stays plain selectable text, never a dead button. The text copied is the block's
#: ``<code>``, exactly the commands; without the clipboard API (a page on plain http) it
#: selects that text and tries the browser's copy command.
COPY_SCRIPT = """(function (me) {
  var root = (me && me.parentElement) || document;
  root.querySelectorAll('.commands-row > pre.commands').forEach(function (pre) {
    var row = pre.parentElement;
    if (row.querySelector('button.copy-commands')) { return; }
    var code = pre.querySelector('code') || pre;
    var button = document.createElement('button');
    button.type = 'button';
    button.className = 'copy-commands';
    button.textContent = 'Copy';
    button.title = 'Copy the commands';
    button.style.cssText = 'flex: none; min-width: 5.5em; margin-top: .3em; ' +
      'font: 12px sans-serif; padding: .35em .7em; cursor: pointer; border: 1px solid #d0d7de; ' +
      'border-radius: 4px; background: #fff; color: #1f2328';
    function say(word) {
      button.textContent = word;
      setTimeout(function () { button.textContent = 'Copy'; }, 2000);
    }
    function select() {
      var range = document.createRange();
      range.selectNodeContents(code);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      var copied = false;
      try { copied = document.execCommand('copy'); } catch (e) { copied = false; }
      say(copied ? 'Copied' : 'Press Ctrl+C');
    }
    button.addEventListener('click', function () {
      var text = code.textContent;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { say('Copied'); }, select);
      } else {
        select();
      }
    });
    row.appendChild(button);
  });
})(document.currentScript);"""


def steps_html(heading: str, steps: list[Step], level: int = 3) -> str:
    """The numbered steps as HTML (the notebooks' outputs and the report): a heading of
    ``level``, each sentence, then its commands in a ``<pre class='commands'>`` block (one
    command a line, copyable; styled inline by :data:`CODE_BLOCK_STYLE`) in a
    ``commands-row``, and last :data:`COPY_SCRIPT`, which adds a copy button to each row where
    scripts run.

    >>> print(steps_html("Try", [Step("Say hi", "In `bash`:", ["echo 'a < b'"])]))
    ... # doctest: +ELLIPSIS
    <h3>Try</h3>
    <p><b>1. Say hi.</b> In <code>bash</code>:</p>
    <div class='commands-row' style='...'><pre class='commands' ...>echo &#x27;a &lt; b&#x27;</code>...
    <script>(function (me) {...})(document.currentScript);</script>
    """
    import html

    parts = [f"<h{level}>{html.escape(heading)}</h{level}>"]
    for i, step in enumerate(steps, 1):
        parts.append(f"<p><b>{i}. {html.escape(step.title)}.</b> {_inline_html(step.text)}</p>")
        if step.commands:
            code = html.escape("\n".join(step.commands))
            parts.append(
                f"<div class='commands-row' style='{_ROW_STYLE}'>"
                f"<pre class='commands' style='{CODE_BLOCK_STYLE}'>"
                f"<code style='{_CODE_STYLE}'>{code}</code></pre></div>"
            )
    if any(step.commands for step in steps):
        parts.append(f"<script>{COPY_SCRIPT}</script>")
    return "\n".join(parts)


class StepsView:
    """Real-setup steps in a notebook: HTML with copyable command blocks and their copy
    buttons (preferred by JupyterLab and by the exported pages), Markdown, and the Markdown as
    plain text."""

    def __init__(self, heading: str, steps: list[Step]) -> None:
        self.heading = heading
        self.steps = steps

    def _repr_html_(self) -> str:
        return steps_html(self.heading, self.steps, level=4)

    def _repr_markdown_(self) -> str:
        return steps_markdown(self.heading, self.steps)

    def __repr__(self) -> str:
        return self._repr_markdown_()


def lab_steps(
    ws: Workspace, model_repository: str = EXAMPLE_BUCKET
) -> list[tuple[str, list[Step]]]:
    """Every real-setup step of the lab, notebook by notebook (01 to 05), with its heading."""
    return [
        ("RGB PeopleNet on Triton in GKE (notebook 01)", rgb_model_steps(ws, model_repository)),
        ("The FLIR thermal dataset (notebook 02)", flir_steps()),
        ("Training in the TAO container (notebook 03)", tao_steps()),
        ("IR model on Triton in GKE (notebook 04)", ir_model_steps(ws, model_repository)),
        ("IR inference against the GKE Triton (notebook 05)", ir_client_steps()),
    ]


def show_steps(heading: str, steps: list[Step]) -> StepsView:
    """The steps for a notebook: HTML with copyable command blocks, the Markdown in
    plain-text viewers (:class:`StepsView`)."""
    return StepsView(heading, steps)


def _join(argv: Any) -> str:
    from cvlab.shell import shell_join

    return argv.shell if hasattr(argv, "shell") else shell_join(argv)


def triton_on_gke_steps(model_repository: str = EXAMPLE_BUCKET) -> list[Step]:
    """Triton on GKE from ``model_repository``: the Marketplace application (Triton 2.5.0, as
    the lab) or ``kubectl apply`` of cvlab's manifests, then the Istio ingress IP."""
    from cvlab.cloud.gke import istio_ingress_command

    manifests = [
        "cvlab",
        "cloud",
        "manifests",
        "--model-repository",
        model_repository,
        "--istio",
    ]
    return [
        Step(
            "Deploy Triton on GKE",
            f"Either the [GKE Triton Marketplace application]({MARKETPLACE_TRITON}) on your A100 "
            f"cluster with the model repository `{model_repository}`, choosing application "
            "version **2.5.0** (the lab's note: Triton 2.5.0 runs the TensorRT engines TAO 3.0 "
            "builds), or cvlab's manifests (Deployment, Service, autoscaler, Istio gateway; "
            "image `tritonserver:20.11` = Triton 2.5.0):",
            [f"{_join(manifests)} > triton.yaml", "kubectl apply -f triton.yaml"],
        ),
        Step(
            "Find the Istio ingress IP",
            "The Triton client's `-u` is this address with port 80 (the notebooks' `TRITON_URL`).",
            [f"export INGRESS_HOST=$({_join(istio_ingress_command())})", "echo $INGRESS_HOST:80"],
        ),
    ]


def lab_model_config(root: str | os.PathLike[str], name: str, num_classes: int) -> Path:
    """The lab's tensorrt_plan ``config.pbtxt`` for ``name``, written to
    ``root/<name>/config.pbtxt``: the real engine's sizes (input 3x544x960 as
    ``tlt-converter -d 3,544,960`` builds it, grids 34x60, batch 16), not the offline model's.

    >>> import tempfile
    >>> from cvlab.triton.model_repository import read_model_config
    >>> config = read_model_config(lab_model_config(tempfile.mkdtemp(), "peoplenet_ir_tlt", 1))
    >>> list(config.input[0].dims), [list(o.dims) for o in config.output]
    ([3, 544, 960], [[4, 34, 60], [1, 34, 60]])
    """
    from cvlab.fileio import atomic_write_text
    from cvlab.triton.model_repository import build_model_config, config_to_text, peoplenet_spec

    spec = peoplenet_spec(name, num_classes, PEOPLENET_INPUT_SIZE)
    path = Path(root) / name / "config.pbtxt"
    return atomic_write_text(path, config_to_text(build_model_config(spec, "tensorrt_plan")))


def _lab_config(ws: Workspace, name: str, num_classes: int) -> Path:
    """:func:`lab_model_config` under ``ws.root/real_setup`` (the RGB model's)."""
    return lab_model_config(ws.root / "real_setup", name, num_classes)


def rgb_model_steps(
    ws: Workspace,
    model_repository: str = EXAMPLE_BUCKET,
    images_dir: str | os.PathLike[str] = "inference_images/rgb",
) -> list[Step]:
    """Notebook 01's real setup: RGB PeopleNet from NGC -> .etlt -> TensorRT plan ->
    ``gs://.../peoplenet_tlt/1/model.plan`` + config.pbtxt -> Triton on GKE -> the client."""
    from cvlab.export.tensorrt import tao_converter_command
    from cvlab.inference.clustering_config import PEOPLENET_RGB_CONFIG
    from cvlab.lab.environment import ngc_download_command
    from cvlab.train.tao import LAB_KEY, detectnet_v2_export

    tlt = f"{PEOPLENET_DIR}/resnet34_peoplenet.tlt"
    etlt = f"{PEOPLENET_DIR}/resnet34_peoplenet.etlt"
    engine = f"{PEOPLENET_DIR}/model.engine"
    config = _lab_config(ws, "peoplenet_tlt", 3)
    repo = model_repository.rstrip("/")
    return [
        Step(
            "Download PeopleNet from NGC",
            "In the TAO container (notebook 03 shows how to start it), with the NGC CLI "
            "configured (`ngc config set`):",
            ["mkdir -p /tlt/models", _join(ngc_download_command(NGC_PEOPLENET, "/tlt/models"))],
        ),
        Step(
            "Convert it to a TensorRT plan",
            "Export the .tlt to .etlt, then build the engine for this GPU:",
            [
                _join(detectnet_v2_export(tlt, etlt, key=LAB_KEY)),
                _join(
                    tao_converter_command(
                        etlt, LAB_KEY, engine=engine, data_type=None, max_batch=None,
                        tool="tlt-converter",
                    )
                ),
            ],
        ),
        Step(
            "Copy the plan and its config.pbtxt to the bucket",
            f"The config is written by cvlab (`{config.relative_to(ws.root)}` in the workspace, "
            "the lab's `peoplenet_tlt` config):",
            [
                _join(["gsutil", "cp", engine, f"{repo}/peoplenet_tlt/1/model.plan"]),
                _join(["gsutil", "cp", str(config), f"{repo}/peoplenet_tlt/"]),
            ],
        ),
        *triton_on_gke_steps(model_repository),
        Step(
            "Send the images",
            "The lab's client, as `cvlab infer` (or set `TRITON_URL` and "
            '`MODEL_NAME = "peoplenet_tlt"` in this notebook). One client process prepares '
            "about 100 frames per second per CPU core (labels only; `cvlab bench client` "
            "measures yours); to keep a GPU server busy, add `--workers N` with N = "
            "PeopleNet's frames per second on that GPU (the A100 PCIe column of "
            f"[NVIDIA's DeepStream performance table]({DEEPSTREAM_PERFORMANCE})) divided by "
            "that figure, on N free cores:",
            [
                _join(
                    [
                        "cvlab", "infer", str(images_dir), "-m", "peoplenet_tlt", "-x", "1",
                        "-b", "16", "--mode", "DetectNet_v2", "-i", "https",
                        "-u", "$INGRESS_HOST:80", "--async",
                        "--output_path", "inference_images_out",
                        "--postprocessing_config", str(PEOPLENET_RGB_CONFIG),
                    ]
                ).replace("'$INGRESS_HOST:80'", "$INGRESS_HOST:80"),
            ],
        ),
    ]  # fmt: skip


def flir_steps() -> list[Step]:
    """Notebook 02's real setup: the FLIR ADAS download."""
    return [
        Step(
            "Download FLIR ADAS",
            f"Request the thermal dataset on [FLIR's download page]({FLIR_DOWNLOAD_PAGE}) "
            "(v1.3 or v2; about 14,000 annotated thermal frames), unzip it and set `FLIR_ROOT` "
            "in this notebook to its folder; the layout is detected.",
            ["unzip FLIR_ADAS_v2.zip -d /data  # then FLIR_ROOT = '/data/FLIR_ADAS_v2'"],
        )
    ]


def tao_steps() -> list[Step]:
    """Notebook 03's real setup: the TAO container the lab's training commands run in."""
    return [
        Step(
            "Start the TAO container",
            "On a GPU machine with NVIDIA Docker (the lab's NGC VM), from the folder holding "
            "the specs and data; it serves Jupyter on port 8888:",
            [
                "docker run --gpus all -it --shm-size=1g --ulimit memlock=-1 "
                '--ulimit stack=67108864 -p8888:8888 -v "$(pwd)":/tlt '
                f"{TAO_CONTAINER}"
            ],
        )
    ]


def ir_model_steps(ws: Workspace, model_repository: str = EXAMPLE_BUCKET) -> list[Step]:
    """Notebook 04's real setup: the retrained model -> .etlt -> TensorRT plan ->
    ``gs://.../peoplenet_ir_tlt/1/model.plan`` + config.pbtxt -> Triton on GKE."""
    from cvlab.train.tao import lab_commands

    tao = lab_commands()
    config = lab_model_config(ws.gke_model_repository, LAB_IR_MODEL_NAME, 1)
    repo = model_repository.rstrip("/")
    return [
        Step(
            "Export the retrained model and build its TensorRT plan",
            "In the TAO container, after the training of notebook 03 (the engine's input is "
            "3x544x960, the size the training spec trains at):",
            [tao["export"].shell, tao["convert"].shell],
        ),
        Step(
            "Copy the plan and its config.pbtxt to the bucket",
            f"The config is written by cvlab for that engine (`{config.relative_to(ws.root)}` "
            "in the workspace: input 3x544x960, grids 34x60):",
            [
                _join(
                    [
                        "gsutil",
                        "cp",
                        "/tlt/models/ir.engine",
                        f"{repo}/{LAB_IR_MODEL_NAME}/1/model.plan",
                    ]
                ),
                _join(["gsutil", "cp", str(config), f"{repo}/{LAB_IR_MODEL_NAME}/"]),
            ],
        ),
        *triton_on_gke_steps(model_repository),
    ]


def ir_client_steps(images_dir: str = "directory_to_test_images") -> list[Step]:
    """Notebook 05's real setup: the lab's IR client command against the GKE Triton."""
    from cvlab.inference.clustering_config import PEOPLENET_IR_CONFIG

    command = _join(
        [
            "cvlab", "infer", images_dir, "-m", LAB_IR_MODEL_NAME, "-x", "1", "-b", "16",
            "--mode", "DetectNet_v2", "--class_list", "person", "-i", "https",
            "-u", "$INGRESS_HOST:80", "--async",
            "--output_path", f"{images_dir}_output",
            "--postprocessing_config", str(PEOPLENET_IR_CONFIG),
        ]
    ).replace("'$INGRESS_HOST:80'", "$INGRESS_HOST:80")  # fmt: skip
    return [
        Step(
            "Send held-out thermal images to the GKE Triton",
            "With `INGRESS_HOST` from notebook 04 (or set `TRITON_URL` in this notebook):",
            [command],
        )
    ]
