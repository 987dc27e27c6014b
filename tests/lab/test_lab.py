"""cvlab.lab (workspace, records, environment, step helpers), cvlab.lab.report and cvlab.lab.widgets."""

from __future__ import annotations

import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from cvlab import lab  # noqa: E402
from cvlab.detections import Detections  # noqa: E402
from cvlab.lab.report import build_report  # noqa: E402


def test_workspace_layout_and_relative_paths(tmp_path: Path) -> None:
    ws = lab.Workspace(tmp_path / "ws")
    assert ws.root == tmp_path / "ws" and ws.root.is_dir()
    assert ws.dataset == ws.root / "dataset" and ws.model_repository.parent == ws.root
    assert lab.resolve_workspace_path("runs/x") == (lab.REPO_ROOT / "runs/x").resolve()
    assert lab.resolve_workspace_path(tmp_path) == tmp_path


def test_state_merges_atomically_and_names_a_corrupt_file(tmp_path: Path) -> None:
    ws = lab.Workspace(tmp_path)
    ws.update_state(a=Path("/x/y"), b=(1, 2))
    ws.update_state(c={"d": np.float32(0.5)})
    assert ws.state() == {"a": "/x/y", "b": [1, 2], "c": {"d": 0.5}}
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    ws.state_file.write_text("{broken")
    with pytest.raises(ValueError, match="lab_state.json"):
        ws.state()


def test_records_become_an_html_report(tmp_path: Path) -> None:
    ws = lab.Workspace(tmp_path / "ws")
    ws.update_state(
        flir_source=ws.flir_source, rgb_standin={"epochs": 1}, trained={"config": "tiny"},
        deployed_gcs=lab.EMULATOR_MODEL_REPOSITORY, rgb_ap=0.0213, ir_ap=0.8049, rgb_frames_ap=0.903,
    )  # fmt: skip
    lab.record_table(ws, "00_environment", pd.DataFrame({"component": ["python"]}), "Env")
    lab.record_table(
        ws,
        "05_ap_comparison",
        pd.DataFrame({"model": ["RGB model", "IR model"], "AP": [0.0213, 0.8049]}),
        "AP table",
    )
    lab.record_table(ws, "03_training_history", pd.DataFrame({"epoch": [1]}), "History")
    lab.record_text(ws, "04_repository", "model_repository/\n└── m/", "Repository")
    figures = (("01_rgb_overlays", "Real frames"), ("02_stats", "Stats"))
    for name, title in (*figures, ("05_before_after", "Before/after")):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        lab.record_figure(ws, name, fig, title)
        plt.close(fig)
    lab.record_image(ws, "05_ir_one", np.full((20, 30, 3), 200, np.uint8), "an overlay")
    nb = tmp_path / "nb" / "05_ir_inference.html"
    nb.parent.mkdir()
    nb.write_text("<html></html>")
    html = build_report(
        ws.root, tmp_path / "out" / "report.html", [nb], seconds={"05_ir_inference": 41.2}
    ).read_text()
    # the headline first: what ran, the RGB-vs-IR result, the before/after figure, the links
    headline = html[html.index("<section id='headline'>") : html.index("</section>")]
    assert "Offline run: a real camera video, synthetic thermal data, stand-in models" in headline
    assert "RGB model <b>0.02</b> &rarr; retrained IR model <b>0.80</b>" in headline
    assert "held-out real video frames: <b>0.90</b>" in headline
    assert "Before/after" in headline and "data:image/png;base64," in headline
    assert headline.index("Real frames") < headline.index("Before/after")  # a real frame first
    assert "href='../nb/05_ir_inference.html'>05_ir_inference</a> (41 s)" in headline
    # then the sections in the story's order, details (environment, raw history) folded last
    sections = ("RGB inference", "Dataset", "Training", "Deploy", "IR inference")
    order = [html.index(f"<h2>{h}</h2>") for h in sections]
    assert order == sorted(order) and html.index("Stats") > order[1]
    assert html.index("<pre>model_repository/") > order[3]
    details = html.index("<h2>Details</h2>")
    assert html.index("<summary>Env</summary>") > details
    assert html.index("<summary>History</summary>") > details
    assert "<td>0.805</td>" in html and "<td>RGB model</td>" in html  # rounded for people
    assert html.count("data:image/png;base64,") == 3 and html.count("data:image/jpeg;base64,") == 1
    assert "width: 100%" in html and 'id="zoom"' in html  # full width, click to enlarge
    empty = build_report(tmp_path / "empty", tmp_path / "empty.html").read_text()
    assert empty.count("Nothing recorded") == 6
    # the real-setup steps end the report, the IR model's config the real engine's
    assert html.rindex("<h2") == html.index("<h2 id='real-setup'>The real setup</h2>")
    assert "tlt-converter -k tlt_encode -d 3,544,960" in html


def test_produced_table(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("12345")
    (tmp_path / "f.bin").write_bytes(b"x" * 2000)
    df = lab.produced_table([tmp_path / "d", tmp_path / "f.bin", tmp_path / "gone"], tmp_path)
    assert df.to_dict("records") == [
        {"path": "d", "kind": "folder", "files": 1, "size (MB)": 0.0},
        {"path": "f.bin", "kind": "file", "files": 1, "size (MB)": 0.002},
        {"path": str(tmp_path / "gone"), "kind": "missing", "files": 0, "size (MB)": 0.0},
    ]


def test_environment_table_finds_the_bundled_tritonserver() -> None:
    env = lab.environment_table(check_gpu=False).set_index("component")
    assert env.loc["tritonserver binary", "status"] == "found"
    assert Path(env.loc["tritonserver binary", "detail"]).name == "tritonserver"
    assert env.loc["numpy", "status"] == np.__version__


def test_ngc_download_explains_when_the_cli_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no ngc executable
    result = lab.download_ngc_model("nvidia/tao/peoplenet:unpruned_v2.1", tmp_path / "m")
    assert result.path is None and "NGC CLI not installed" in result.message
    assert (
        "ngc registry model download-version nvidia/tao/peoplenet:unpruned_v2.1" in result.message
    )
    off = lab.download_ngc_model("nvidia/x:1", tmp_path / "m", enabled=False)
    assert "disabled" in off.message and not (tmp_path / "m").exists()


def test_sample_photo_is_copied_once(tmp_path: Path) -> None:
    from cvlab.images import load_image

    ws = lab.Workspace(tmp_path)
    path = lab.sample_photo(ws)
    assert path.name == "grace_hopper.jpg" and path.parent == ws.rgb_images
    assert load_image(path).shape == (600, 512, 3)
    stamp = path.stat().st_mtime_ns
    assert lab.sample_photo(ws) == path and path.stat().st_mtime_ns == stamp


def test_flir_root_must_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="FLIR_ROOT"):
        lab.ensure_flir_source(lab.Workspace(tmp_path), tmp_path / "nope")


def _person_grid(box: tuple[float, float, float, float], size=(320, 192), cov_value=0.6):
    """Outputs a DetectNet_v2 would give for one person box (exact regressions, 3x5 cells)."""
    w, h = size
    gw, gh = w // 16, h // 16
    cov = np.zeros((1, gh, gw), np.float32)
    bbox = np.zeros((4, gh, gw), np.float32)
    x1, y1, x2, y2 = box
    for j in range(gh):
        for i in range(gw):
            gx, gy = 16 * i + 0.5, 16 * j + 0.5
            if x1 + 8 < gx < x2 - 8 and y1 + 20 < gy < y2 - 20:
                cov[0, j, i] = cov_value
                bbox[:, j, i] = [(gx - x1) / 35, (gy - y1) / 35, (x2 - gx) / 35, (y2 - gy) / 35]
    return {"output_cov/Sigmoid": cov, "output_bbox/BiasAdd": bbox}


def test_threshold_tuner_reclusters_cached_outputs() -> None:
    from cvlab.inference.clustering_config import default_config
    from cvlab.lab.widgets import ThresholdTuner

    image = np.zeros((192, 320, 3), np.uint8)
    outputs = _person_grid((100, 40, 150, 170))
    config = default_config(["person"], dbscan_confidence_threshold=0.5)
    tuner = ThresholdTuner([image], [outputs], config, model_size=(320, 192), names=["a.jpg"])
    dets = tuner.detections()
    assert len(dets) == 1
    np.testing.assert_allclose(dets.xyxy[0], [100, 40, 150, 170], atol=0.5)
    assert tuner.render().sum() > 0  # the box is drawn
    box = tuner.widget()
    before = box.children[0].children[1].children[1].value
    conf_slider = box.children[0].children[0].children[1]
    conf_slider.value = float(dets.confidence[0]) + 0.5  # above the cluster's summed coverage
    assert len(tuner.detections()) == 0
    assert "0 boxes" in box.children[0].children[1].children[0].value
    assert box.children[0].children[1].children[1].value != before
    with pytest.raises(KeyError, match="no class 'car'"):
        tuner.set_class("car", dbscan_eps=0.2)


def test_threshold_override_and_comparison_table() -> None:
    from cvlab.train.evaluate import evaluate_detections

    cfg = lab.ir_postprocessing_config(confidence_threshold=0.25)
    assert cfg.class_names == ("person",)
    assert cfg.classes["person"].dbscan_confidence_threshold == 0.25
    rgb = lab.rgb_postprocessing_config()  # the stand-in's thresholds (PeopleNet's: 0.9)
    assert rgb.class_names == ("person", "bag", "face")
    assert rgb.classes["person"].dbscan_confidence_threshold == pytest.approx(3.25)
    peoplenet = lab.rgb_postprocessing_config(path=lab.PEOPLENET_RGB_CONFIG)
    assert peoplenet.classes["person"].dbscan_confidence_threshold == pytest.approx(0.9)
    gt = Detections(np.array([[10, 10, 50, 90]]), [1.0], [0], ("person",), (100, 100))
    good = Detections(np.array([[11, 10, 50, 90]]), [0.9], [0], ("person",), (100, 100))
    none = Detections(np.zeros((0, 4)), [], [], ("person",), (100, 100))
    table = lab.compare_evaluations(
        {
            "RGB": evaluate_detections([none], [gt], ["person"]),
            "IR": evaluate_detections([good], [gt], ["person"]),
        }
    )
    assert list(table["model"]) == ["RGB", "IR"]
    assert table["AP"].tolist() == pytest.approx([0.0, 1.0])


def test_local_gcs_emulator_serves_the_bucket(tmp_path: Path) -> None:
    from cvlab.cloud.gcs import list_blobs, make_client, upload_directory

    (tmp_path / "repo" / "m" / "1" / "__pycache__").mkdir(parents=True)
    (tmp_path / "repo" / "m" / "config.pbtxt").write_text('name: "m"')
    # Triton's python backend leaves caches beside model.py: they are never uploaded
    (tmp_path / "repo" / "m" / "1" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"x")
    (tmp_path / "repo" / "m" / "1" / "stray.pyc").write_bytes(b"x")
    with lab.GcsEmulator("lab-bucket") as emu:
        client = make_client(emulator_host=emu.endpoint)
        report = upload_directory(
            tmp_path / "repo", "gs://lab-bucket/r", client=client, progress=False
        )
        assert report.ok
        assert [b.path for b in list_blobs("gs://lab-bucket/r", client=client)] == [
            "m/config.pbtxt"
        ]
        env = emu.triton_env(tmp_path)
    assert env["CLOUD_STORAGE_EMULATOR_ENDPOINT"] == emu.endpoint
    assert env["TRITON_GCS_MOUNT_DIRECTORY"] == str(tmp_path)
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == ""  # a key file in the shell never leaks


def test_live_training_plot_redraws_per_epoch(tmp_path: Path) -> None:
    from cvlab.lab.live import LiveTrainingPlot
    from cvlab.viz.plots import render_history_png

    csv = tmp_path / "metrics.csv"
    rows = [{"epoch": 1, "loss": 0.5, "person_cov_loss": 0.3, "mAP": float("nan")}]
    with LiveTrainingPlot(csv, total_epochs=2, interval=0.05) as live:
        pd.DataFrame(rows).to_csv(csv, index=False)
        for _ in range(100):  # wait for the watcher thread (at most 5 s)
            if live.updates:
                break
            time.sleep(0.05)
        assert live.updates == 1
        rows.append({"epoch": 2, "loss": 0.25, "person_cov_loss": 0.2, "mAP": 0.5})
        # One atomic change (content and a new mtime, even on coarse clocks), as the trainer's
        # atomic CSV writes are: the watcher or the final check on exit draws it, not both.
        staged = tmp_path / "metrics.csv.tmp"
        pd.DataFrame(rows).to_csv(staged, index=False)
        os.utime(staged, (time.time() + 5, time.time() + 5))
        os.replace(staged, csv)
    assert live.updates == 2  # the final epoch is drawn on exit at the latest
    assert render_history_png(pd.DataFrame(rows)).startswith(b"\x89PNG")


def test_rgb_sample_frames_are_real_held_out_frames_with_truth(tmp_path: Path) -> None:
    from cvlab.datasets.video import HELDOUT_FRAMES, heldout_truth
    from cvlab.images import load_image
    from cvlab.lab.standin import rgb_sample_frames

    ws = lab.Workspace(tmp_path)
    samples = rgb_sample_frames(ws, strip_start=785, strip_length=12, synthetic=1)
    assert len(samples.scored) == len(heldout_truth()) == len(samples.truth)
    frames = [int(p.stem.split("_")[1]) for p in [*samples.scored, *samples.strip]]
    assert all(f in HELDOUT_FRAMES for f in frames)
    assert [p.stem for p in samples.strip] == [f"vtest_{i:06d}" for i in range(785, 795)]
    assert [p.name for p in samples.photos] == [
        "messi5.jpg", "basketball1.png", "basketball2.png", "grace_hopper.jpg",
    ]  # fmt: skip
    # a frame both scored and in the strip is one file, sent once
    shared = 2  # frames 785 and 790
    groups = [samples.scored, samples.strip, samples.photos, samples.synthetic]
    assert len(samples.paths) == len(set(samples.paths)) == sum(map(len, groups)) - shared
    values = list(range(len(samples.paths)))
    assert [samples.paths[v] for v in samples.group("strip", values)] == samples.strip
    assert load_image(samples.scored[0]).shape == (576, 768, 3)
    assert len(samples.truth[0]) and set(samples.truth[0].names) == {"person"}
    assert "bag" in samples.synthetic_truth[0].names or "person" in samples.synthetic_truth[0].names


def test_rgb_standin_is_the_shipped_model_nothing_is_trained(tmp_path: Path) -> None:
    import onnxruntime as ort

    from cvlab.train.standin import ONNX_FILE, SHIPPED_DIR
    from cvlab.triton.model_repository import read_model_config, validate_model_repository

    ws = lab.Workspace(tmp_path / "ws")
    model_dir = lab.ensure_rgb_standin(ws)
    assert model_dir == ws.model_repository / "peoplenet_rgb_standin"
    assert validate_model_repository(ws.model_repository) == []
    assert list(read_model_config(model_dir / "config.pbtxt").input[0].dims) == [3, 288, 384]
    shipped = (SHIPPED_DIR / ONNX_FILE).read_bytes()
    assert (model_dir / "1" / "model.onnx").read_bytes() == shipped
    state = ws.state()["rgb_standin"]
    assert state["input_size"] == [384, 288] and "bag" in state["trained_on"]
    session = ort.InferenceSession(str(model_dir / "1" / "model.onnx"))
    outputs = session.run(None, {"input_1": np.zeros((2, 3, 288, 384), np.float32)})
    assert sorted(o.shape for o in outputs) == [(2, 3, 18, 24), (2, 12, 18, 24)]
    assert "real camera video" in lab.standin_summary()


def _two_people_outputs(size=(320, 192)):
    """Outputs with a strong person (coverage 0.6) and a weak one (0.1) side by side."""
    strong = _person_grid((40, 40, 100, 170), size, 0.6)
    weak = _person_grid((200, 40, 260, 170), size, 0.1)
    return {k: strong[k] + weak[k] for k in strong}


def test_threshold_steps_trade_false_boxes_for_missed_people() -> None:
    from cvlab.inference.clustering_config import default_config
    from cvlab.lab.widgets import ThresholdTuner

    image = np.zeros((192, 320, 3), np.uint8)
    config = default_config(["person"], dbscan_confidence_threshold=2.0)
    tuner = ThresholdTuner(
        [image, image], [_person_grid((40, 40, 100, 170)), _two_people_outputs()], config,
        model_size=(320, 192), names=["one.jpg", "two.jpg"],
    )  # fmt: skip
    scores = tuner.cluster_scores("person", 1)
    assert len(scores) == 2 and scores[0] < 2.0 < scores[1]  # the weak one is hidden at 2.0
    assert len(tuner.detections(1)) == 1
    truth = [
        Detections(boxes, [1.0] * len(boxes), [0] * len(boxes), ("person",), (320, 192))
        for boxes in ([[40, 40, 100, 170]], [[40, 40, 100, 170], [200, 40, 260, 170]])
    ]
    # a step below the weak person's score, the config's, and one above the strong person's
    factors = (scores[0] / 2 / 2.0, 1.0, (scores[1] + 1) / 2.0)
    steps = lab.show_threshold_steps(tuner, truth, "person", factors, index=1)
    plt.close(steps.figure)
    assert steps.table["boxes"].tolist() == [3, 2, 0]  # the weak one appears, then all go
    assert steps.table["threshold"].iloc[1] == 2.0 and "The config's 2 sits between" in (
        steps.sentence()
    )
    assert tuner.config.classes["person"].dbscan_confidence_threshold == 2.0  # restored
    assert scores[1] < tuner.confidence_range(0) < scores[1] * 1.2 + 0.5  # ends past the best
    assert tuner.render(1, labels=["person"]).shape == (384, 640, 3)  # small frames drawn 2x
    box = tuner.widget(start=1)
    assert "two.jpg: 1 box (person 1)" in box.children[0].children[1].children[0].value
    bundle = box._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("threshold tuner (2 images)")  # not VBox(...)
    assert "data:image/jpeg;base64," in bundle["text/html"]  # a snapshot where widgets cannot draw


def test_people_tables_and_folded_details() -> None:
    from cvlab.train.evaluate import evaluate_detections

    gt = Detections(np.array([[10, 10, 50, 90]]), [1.0], [0], ("person",), (100, 100))
    good = Detections(np.array([[11, 10, 50, 90]]), [2.345678], [0], ("person",), (100, 100))
    table = lab.ap_table(evaluate_detections([good], [gt], ["person"]))
    assert list(table.columns[:4]) == ["class", "AP", "precision", "recall"]
    assert "objects (ground truth)" in table.columns
    shown = lab.table(lab.detections_table([good]))
    assert "<th>best score</th>" in shown._repr_html_() and "2.35" in repr(shown)
    folded = lab.folded(pd.DataFrame({"component": ["python"], "status": ["3.11"]}), "Details")
    assert folded._repr_html_().startswith("<details><summary><b>Details</b></summary>")
    history = pd.DataFrame(
        {"epoch": [1, 2, 3], "loss": [0.5, 0.3, 0.2], "lr": [1e-4] * 3,
         "mAP": [np.nan, 0.51234, np.nan], "ap_person": [np.nan, 0.51234, np.nan]}
    )  # fmt: skip
    rows = lab.history_table(history)
    assert rows["epoch"].tolist() == [2, 3]  # validated epochs and the last one
    # one AP for one class, readable number formats (never "learning rate 0")
    assert list(rows.columns) == [
        "epoch",
        "total loss (weighted)",
        "learning rate",
        "validation AP",
    ]
    assert rows["learning rate"].tolist() == ["1.0e-04", "1.0e-04"]
    assert rows["validation AP"].tolist() == ["0.51", ""]


def test_verdict_and_how_long(tmp_path: Path) -> None:
    env = lab.environment_table(check_gpu=False)
    verdict = lab.verdict_table(env).set_index("setup")["verdict"]
    assert verdict["offline demo"] == "ready"  # TensorFlow and the bundled tritonserver are here
    assert verdict["real setup"].startswith("missing: GPU, TensorRT")  # no GPU in CI
    timings = tmp_path / "timings.json"
    timings.write_text(
        '{"measured": "2030-01-02", "machine": "2 CPU cores", "seconds": {"01_x": 95.4}}'
    )
    assert lab.how_long("01_x", timings) == (
        "How long: 95 s in the last `make demo` (2030-01-02, 2 CPU cores)."
    )
    assert "not measured yet" in lab.how_long("02_y", timings)


def test_real_setup_commands_name_files_that_exist(tmp_path: Path) -> None:
    from cvlab.triton.model_repository import read_model_config

    ws = lab.Workspace(tmp_path)
    rgb = lab.rgb_model_steps(ws, "gs://b/tlt/triton-model")
    commands = [c for step in rgb for c in step.commands]
    text = "\n".join(commands)
    assert "ngc registry model download-version nvidia/tao/peoplenet:unpruned_v2.1" in text
    assert "tlt-converter -k tlt_encode -d 3,544,960" in text
    assert "gs://b/tlt/triton-model/peoplenet_tlt/1/model.plan" in text
    config_copy = next(c for c in commands if c.startswith("gsutil cp") and "config.pbtxt" in c)
    config = Path(config_copy.split()[2])
    assert config.is_file()  # written by cvlab, not a file to fetch first
    parsed = read_model_config(config)
    assert parsed.name == "peoplenet_tlt" and parsed.platform == "tensorrt_plan"
    assert "kubectl apply -f triton.yaml" in text and "istio-ingressgateway" in text
    markdown = repr(lab.show_steps("RGB", rgb))
    assert "version **2.5.0**" in markdown and "marketplace" in markdown
    assert "flir.com" in lab.flir_steps()[0].text
    assert "tlt-streamanalytics:v3.0-py3" in lab.tao_steps()[0].commands[0]
    ir = "\n".join(c for step in lab.ir_model_steps(ws) for c in step.commands)
    assert "/tlt/models/ir.etlt" in ir and "peoplenet_ir_tlt/1/model.plan" in ir
    assert "--class_list person" in lab.ir_client_steps()[0].commands[0]


def test_progress_bars_are_saved_finished() -> None:
    from cvlab.lab.progress import NotebookProgress, use_in_notebooks

    assert use_in_notebooks() is False  # outside a kernel tqdm stays as it is
    bar = NotebookProgress(total=4, desc="epoch 1/2", display=False)
    assert 'data-progress="running"' in bar.bundle()["text/html"]
    bar.update(2)
    bar.set_postfix(loss="0.1234", mAP="0.500")
    bar.close()
    html = bar.bundle()["text/html"]
    assert 'data-progress="stopped"' in html  # closed before its total
    assert "epoch 1/2" in html and "loss=0.1234, mAP=0.500" in html and 'value="2"' in html
