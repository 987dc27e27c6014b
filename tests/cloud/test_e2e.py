"""End to end with no cloud: repository -> GCS emulator -> local Triton reading gs:// -> client.

Everything is real: the gcp-storage-emulator API server, the bundled tritonserver (its GCS
filesystem talks to the emulator), the demo ONNX model and the Triton client.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.cloud import (  # noqa: F401
    BUCKET,
    gcs_emulator_fixture,
    gcs_emulator_server_fixture,
)
from support.triton import INPUT_SIZE, MODEL, NUM_CLASSES, write_demo_repo, write_test_images

from cvlab.cli import main
from cvlab.cloud.deploy import smoke_step, upload_step, wait_ready_step
from cvlab.cloud.gcs import list_blobs, verify

pytestmark = pytest.mark.server
URL = f"gs://{BUCKET}/tlt/triton-model"


def test_triton_serves_the_uploaded_repository_from_gs(gcs_emulator, tmp_path, monkeypatch, capsys):
    from cvlab.triton.client import TritonDetectNetClient
    from cvlab.triton.server import TritonServer

    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    repo = write_demo_repo(tmp_path / "repo")
    client = gcs_emulator.client()
    report = upload_step(repo, URL, client=client, progress=False)
    assert f"{MODEL}/config.pbtxt" in report.transferred
    assert verify(repo, URL, client=client) == []
    assert {b.path for b in list_blobs(URL, client=client)} >= {
        f"{MODEL}/config.pbtxt",
        f"{MODEL}/1/model.onnx",
    }

    env = gcs_emulator.triton_env(tmp_path / "mount")
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == ""  # no key file is inherited
    gcs_emulator.requests.clear()
    with TritonServer(URL, env=env, startup_timeout=90) as server:
        # Triton really read the objects from the emulator (not from the local folder).
        assert any(f"/b/{BUCKET}/o" in line for line in gcs_emulator.requests)
        # ... and copied them into TRITON_GCS_MOUNT_DIRECTORY, byte for byte.
        mounted = {p.name: p for p in (tmp_path / "mount").rglob("*") if p.is_file()}
        for rel in (f"{MODEL}/config.pbtxt", f"{MODEL}/1/model.onnx"):
            assert mounted[Path(rel).name].read_bytes() == (repo / rel).read_bytes()
        media_get = f'"GET /{BUCKET}/tlt%2Ftriton-model%2F{MODEL}%2F1%2Fmodel.onnx '
        assert any(line.startswith(media_get) for line in gcs_emulator.requests)
        ready = wait_ready_step(server.http_url, timeout=10, model_name=MODEL)
        assert ready.ready and ready.attempts >= 1

        client_ = TritonDetectNetClient(server.http_url, MODEL)
        assert client_.input_size == INPUT_SIZE and client_.num_classes == NUM_CLASSES
        x = np.random.default_rng(0).random((2, 3, INPUT_SIZE[1], INPUT_SIZE[0]), np.float32)
        outputs = client_.infer_batch(x)
        assert {k.split("/")[0] for k in outputs} == {"output_cov", "output_bbox"}

        images = write_test_images(tmp_path / "images", 3)
        smoke = smoke_step(server.http_url, MODEL, tmp_path / "images")
        assert [Path(d.image_path).name for d in smoke.detections] == [p.name for p in images]
        frame = smoke.to_dataframe()
        assert list(frame["image"]) == [str(p) for p in images]
        assert {"person", "bag", "face", "boxes"} <= set(frame.columns)

        # The whole ``cvlab deploy`` flow against this server: upload (nothing changed),
        # manifests printed (no kubectl), wait for ready, smoke inference.
        code = main(
            [
                "cloud", "deploy", "--model-repository", str(repo), "--gcs", URL, "--no-progress",
                "--wait-ready", server.http_url, "--timeout", "10",
                "--smoke-images", str(tmp_path / "images"),
            ]
        )  # fmt: skip
        printed = capsys.readouterr().out
        assert code == 0, printed
        assert "ready=True" in printed and "frame_002.jpg" in printed
        assert "0 transferred" in printed
