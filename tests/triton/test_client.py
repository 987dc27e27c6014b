"""The inference client against a real local Triton (HTTP and gRPC, sync and async, faults)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.triton import (
    INPUT_SIZE,
    MAX_BATCH,
    MODEL,
    demo_server,  # noqa: F401 - module-scoped fixture
    onnx_reference,
    write_demo_repo,
    write_test_images,
)

from cvlab.detections import Detections
from cvlab.images import load_image
from cvlab.inference.preprocess import preprocess_image
from cvlab.triton.client import (
    ModelNotReadyError,
    ServerUnavailableError,
    TritonClientError,
    TritonDetectNetClient,
)
from cvlab.triton.pipeline import InferenceFailedError, detect_images
from cvlab.triton.server import TritonServer, free_port, python_backend_regions

pytestmark = pytest.mark.server
W, H = INPUT_SIZE
PROTOCOLS = ["http", "grpc"]


def _client(server, protocol: str, **kwargs) -> TritonDetectNetClient:
    url = server.http_url if protocol == "http" else server.grpc_url
    return TritonDetectNetClient(url, MODEL, protocol=protocol, **kwargs)


def _our_regions() -> list[str]:
    """This process's shared-memory slots still in /dev/shm."""
    return sorted(p.name for p in Path("/dev/shm").glob(f"cvlab_{os.getpid()}_*"))


def _server_regions(server) -> list[str]:
    import tritonclient.http as http

    status = http.InferenceServerClient(server.http_url).get_system_shared_memory_status()
    return sorted(r["name"] for r in status)


def _success_count(server) -> int:
    import tritonclient.http as http

    stats = http.InferenceServerClient(server.http_url).get_inference_statistics(MODEL)
    return int(stats["model_stats"][0]["inference_stats"]["success"]["count"])


class RecordingPostprocessor:
    """Keeps the raw outputs each frame received (to check request -> frame mapping)."""

    def __init__(self):
        self.outputs: dict[str, dict[str, np.ndarray]] = {}
        self.lock = threading.Lock()

    def batch(self, outputs, sizes, paths):
        with self.lock:
            for i, path in enumerate(paths):
                self.outputs[path] = {k: v[i] for k, v in outputs.items()}
        return [
            Detections.empty(("person", "bag", "face"), s, p)
            for s, p in zip(sizes, paths, strict=True)
        ]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return [str(p) for p in write_test_images(tmp_path_factory.mktemp("images"), 11)]


@pytest.mark.parametrize("shared_memory", ["system", "none"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sync_outputs_match_onnxruntime(demo_server, protocol, shared_memory):  # noqa: F811
    client = _client(demo_server, protocol, shared_memory=shared_memory)
    assert client.input_size == INPUT_SIZE and client.max_batch_size == MAX_BATCH
    assert client.input_name == "input_1" and client.num_classes == 3
    x = np.random.default_rng(1).random((3, 3, H, W), dtype=np.float32)
    out = client.infer_batch(x)
    ref = onnx_reference(x)
    many = client.infer_tensors([x[:1], x, x[1:]])
    np.testing.assert_allclose(many[1]["output_cov/Sigmoid"], ref["output_cov/Sigmoid"], atol=1e-5)
    np.testing.assert_allclose(
        many[2]["output_bbox/BiasAdd"], ref["output_bbox/BiasAdd"][1:], atol=1e-5
    )
    assert set(out) == set(ref) == {"output_cov/Sigmoid", "output_bbox/BiasAdd"}
    for name in ref:
        np.testing.assert_allclose(out[name], ref[name], atol=1e-5)
    assert client.transport == ("shared memory" if shared_memory == "system" else "request body")
    client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    "async_mode,shared_memory", [(True, "system"), (True, "none"), (False, "auto")]
)
def test_pipeline_maps_results_to_frames(
    demo_server,  # noqa: F811
    images,
    tmp_path,
    protocol,
    async_mode,
    shared_memory,
):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    paths = images[:5] + [str(broken)] + images[5:]
    probe = RecordingPostprocessor()
    client = _client(demo_server, protocol, concurrency=3, shared_memory=shared_memory)
    with pytest.warns(UserWarning, match="broken.jpg"):
        dets = detect_images(client, paths, probe, 4, async_mode=async_mode, progress=False)
    assert [d.image_path for d in dets] == images  # input order, unreadable frame skipped
    for d, path in zip(dets, images, strict=True):
        rgb = load_image(path)
        assert d.image_size == (rgb.shape[1], rgb.shape[0])
    tensor = np.stack([preprocess_image(load_image(p), INPUT_SIZE) for p in images])
    ref = onnx_reference(tensor)
    for i, path in enumerate(images):
        for name, value in ref.items():
            np.testing.assert_allclose(probe.outputs[path][name], value[i], atol=1e-5)
    assert client.errors == []
    expected = "request body" if shared_memory == "none" else "shared memory"
    assert client.transport == expected
    client.close()
    assert _our_regions() == []


def test_batch_above_max_batch_size_is_refused_before_any_request(demo_server, images):  # noqa: F811
    client = _client(demo_server, "http")
    before = _success_count(demo_server)
    with pytest.raises(ValueError, match="exceeds max_batch_size 8"):
        client.infer_batch(np.zeros((MAX_BATCH + 1, 3, H, W), np.float32))
    with pytest.raises(ValueError, match="exceeds max_batch_size 8"):
        detect_images(client, images, RecordingPostprocessor(), MAX_BATCH + 1, progress=False)
    assert _success_count(demo_server) == before


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wrong_shape_rejected_cleanly(demo_server, protocol):  # noqa: F811
    client = _client(demo_server, protocol)
    bad = np.zeros((2, 3, H // 2, W), np.float32)
    with pytest.raises(ValueError, match=r"expects \[N, 3, 192, 320\], got \[2, 3, 96, 320\]"):
        client.infer_batch(bad)
    with pytest.raises(TritonClientError, match="unexpected shape for input 'input_1'"):
        client.infer_batch(bad, check=False)  # the server's own check
    assert client.infer_batch(np.zeros((1, 3, H, W), np.float32))["output_cov/Sigmoid"].shape == (
        1,
        3,
        H // 16,
        W // 16,
    )


def test_model_not_ready_and_server_down_errors(demo_server):  # noqa: F811
    with pytest.raises(ModelNotReadyError, match=r"'peoplenet' .* not ready .*demo \(READY\)"):
        TritonDetectNetClient(demo_server.http_url, "peoplenet")
    port = free_port()
    for protocol in PROTOCOLS:
        start = time.monotonic()
        with pytest.raises(ServerUnavailableError, match=f"127.0.0.1:{port}.*not reachable"):
            TritonDetectNetClient(f"127.0.0.1:{port}", MODEL, protocol=protocol, backoff_s=0.05)
        assert time.monotonic() - start < 10


def test_eight_concurrent_async_clients(demo_server, images):  # noqa: F811
    before = _success_count(demo_server)
    failures: list[BaseException] = []
    results: dict[int, list[Detections]] = {}

    def run(k: int) -> None:
        try:
            client = _client(demo_server, PROTOCOLS[k % 2], concurrency=4)
            results[k] = detect_images(
                client, images, RecordingPostprocessor(), 2, async_mode=True, progress=False
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert failures == []
    assert all([d.image_path for d in results[k]] == images for k in range(8))
    requests_per_client = -(-len(images) // 2)
    assert _success_count(demo_server) - before == 8 * requests_per_client


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_server_killed_mid_run_gives_clear_error(tmp_path, protocol, capfd):
    repo = write_demo_repo(tmp_path / "repo")
    paths = [str(p) for p in write_test_images(tmp_path / "img", 24)]
    with TritonServer(repo) as server:
        backend_regions = python_backend_regions(os.getpgid(server.pid))
        client = _client(server, protocol, concurrency=2, retries=1, backoff_s=0.05, timeout_s=10)
        seen = []

        def kill_after_first(det: Detections) -> None:
            seen.append(det)
            if len(seen) == 1:
                os.killpg(os.getpgid(server.pid), signal.SIGKILL)

        start = time.monotonic()
        with pytest.raises(InferenceFailedError) as info:
            detect_images(
                client,
                paths,
                RecordingPostprocessor(),
                1,
                progress=False,
                on_result=kill_after_first,
            )
        assert time.monotonic() - start < 60
        client.close()
    assert _our_regions() == []
    assert backend_regions and not any((Path("/dev/shm") / r).exists() for r in backend_regions)
    err = info.value
    assert len(err.results) >= 1 and err.results[0].image_path == paths[0]
    assert len(err.results) + sum(len(e.paths) for e in err.errors) == len(paths)
    assert any("went away" in e.message for e in err.errors), [str(e) for e in err.errors]
    assert "Traceback" not in capfd.readouterr().err  # no gevent greenlet traceback per request


def test_cli_infer_writes_labels_and_overlays(demo_server, images, tmp_path):  # noqa: F811
    from cvlab.cli import main
    from cvlab.inference.clustering_config import PEOPLENET_RGB_CONFIG
    from cvlab.triton.pipeline import run_inference

    out = tmp_path / "out"
    argv = [
        "infer", os.path.dirname(images[0]), "-m", MODEL, "-x", "1", "-b", "4",
        "--mode", "DetectNet_v2", "-i", "grpc", "-u", demo_server.grpc_url, "--async",
        "--output_path", str(out), "--postprocessing_config", str(PEOPLENET_RGB_CONFIG),
        "--class_list", "person,bag,face", "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    labels = sorted((out / "infer_labels").glob("*.txt"))
    overlays = sorted((out / "infer_images").glob("*.jpg"))
    stems = [os.path.splitext(os.path.basename(p))[0] for p in images]
    assert [p.stem for p in labels] == stems == [p.stem for p in overlays]
    for overlay, path in zip(overlays, images, strict=True):
        assert cv2.imread(str(overlay)).shape == cv2.imread(path).shape
    summary = run_inference(
        images, MODEL, demo_server.http_url, batch_size=4,
        postprocessing_config=PEOPLENET_RGB_CONFIG, progress=False,
    )  # fmt: skip
    assert sum(len(d) for d in summary.detections) > 0  # the random demo model fires somewhere
    for label, dets in zip(labels, summary.detections, strict=True):
        lines = label.read_text().splitlines()
        assert len(lines) == len(dets)
        assert all(len(line.split()) == 16 for line in lines)


def test_cli_infer_errors_are_clean(demo_server, images, tmp_path, capsys):  # noqa: F811
    from cvlab.cli import main

    base = ["infer", images[0], "-m", MODEL, "-u", demo_server.http_url, "--no-progress"]
    base += ["--output_path", str(tmp_path)]
    assert main([*base, "-b", "9"]) == 2
    assert "exceeds max_batch_size 8" in capsys.readouterr().err
    assert main([*base, "--mode", "YOLOv3"]) == 2
    assert "--mode 'YOLOv3' is not supported" in capsys.readouterr().err
    assert main(["infer", images[0], "-m", "nope", "-u", demo_server.http_url]) == 2
    assert "'nope'" in capsys.readouterr().err
    remote = ["infer", images[0], "-m", MODEL, "-u", "10.9.9.9:8000", "--shared-memory", "system"]
    assert main(remote) == 2
    assert "needs a server on this machine" in capsys.readouterr().err
    assert main([*base, "--shared-memory", "none"]) == 0
    assert "1 image(s)" in capsys.readouterr().out


def test_shared_memory_slots_are_reused_and_released(demo_server, images):  # noqa: F811
    client = _client(demo_server, "http", concurrency=2, preprocess_workers=1)
    first = detect_images(client, images, None, 4, progress=False)
    names = _our_regions()
    assert len(names) == 2 + 2  # in flight + read ahead (preprocess_workers + 1)
    assert set(names) <= set(_server_regions(demo_server))
    again = detect_images(client, images, None, 3, progress=False)  # smaller batch: same slots
    assert _our_regions() == names
    assert [d.image_path for d in again] == [d.image_path for d in first]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-4)
    client.close()
    assert _our_regions() == []
    assert not set(names) & set(_server_regions(demo_server))  # unregistered too


def test_regions_forgotten_by_the_server_are_registered_again(demo_server, images):  # noqa: F811
    """perf_analyzer (or any client) may unregister every region on the server."""
    import tritonclient.http as http

    client = _client(demo_server, "grpc", concurrency=2)
    detect_images(client, images[:4], None, 2, progress=False)
    http.InferenceServerClient(demo_server.http_url).unregister_system_shared_memory()
    assert _server_regions(demo_server) == []
    dets = detect_images(client, images, None, 2, progress=False)  # registers them again first
    assert [d.image_path for d in dets] == images and client.errors == []
    http.InferenceServerClient(demo_server.http_url).unregister_system_shared_memory()
    x = np.zeros((2, 3, H, W), np.float32)
    assert client.infer_tensors([x])[0]["output_cov/Sigmoid"].shape == (2, 3, H // 16, W // 16)
    client.close()


def test_shared_memory_fallback_and_refusal(demo_server, images, monkeypatch):  # noqa: F811
    with pytest.raises(ValueError, match="needs a server on this machine"):
        TritonDetectNetClient("10.1.2.3:8000", MODEL, shared_memory="system")
    with pytest.raises(ValueError, match="shared_memory must be one of"):
        TritonDetectNetClient(demo_server.http_url, MODEL, shared_memory="cuda")
    # a full /dev/shm (Docker's default is 64 MB): auto falls back, system refuses
    monkeypatch.setattr("cvlab.triton.shared_memory.shm_free_bytes", lambda *a: 1024)
    client = _client(demo_server, "http")
    with pytest.warns(RuntimeWarning, match="request body.*MiB free"):
        dets = detect_images(client, images[:3], None, 2, progress=False)
    assert len(dets) == 3 and client.transport.startswith("request body (")
    strict = _client(demo_server, "http", shared_memory="system")
    with pytest.raises(TritonClientError, match="shared memory unavailable"):
        detect_images(strict, images[:3], None, 2, progress=False)
    assert _our_regions() == []


def test_input_slots_wait_and_wake_on_close(demo_server):  # noqa: F811
    import tritonclient.http as http

    from cvlab.triton.shared_memory import InputSlots, SlotsClosed

    triton = http.InferenceServerClient(demo_server.http_url)
    slots = InputSlots(triton, 1, (2, 3, H, W), outputs={"out": ((3, 4), np.float32)})
    slot = slots.acquire()
    assert slot.array.shape == (2, 3, H, W) and slot.byte_size(1) == 3 * H * W * 4
    size, offset = slot.output_area("out", 2)
    assert size == 2 * 3 * 4 * 4 and offset >= slot.byte_size(2) and offset % 64 == 0
    with pytest.raises(TimeoutError):
        slots.acquire(timeout=0.05)
    outcome: list[BaseException] = []
    waiter = threading.Thread(target=lambda: _capture(slots.acquire, outcome), daemon=True)
    waiter.start()
    time.sleep(0.1)
    slots.close()
    waiter.join(5)
    assert not waiter.is_alive() and isinstance(outcome[0], SlotsClosed)
    assert _our_regions() == [] and slot.name not in _server_regions(demo_server)


def _capture(func, into: list) -> None:
    try:
        func()
    except BaseException as exc:  # noqa: BLE001 - the test inspects it
        into.append(exc)


# --- issue 14: wrong port, bad version, class count, SIGTERM ----------------------------------
def test_the_other_protocols_port_is_named(
    demo_server,  # noqa: F811
    images,
    tmp_path,
    capsys,
):
    from cvlab.cli import main
    from cvlab.triton.client import probe_protocol

    http, grpc = demo_server.http_url, demo_server.grpc_url
    assert (
        probe_protocol(http),
        probe_protocol(grpc),
        probe_protocol(f"127.0.0.1:{free_port()}"),
    ) == (
        "http",
        "grpc",
        None,
    )
    with pytest.raises(
        ServerUnavailableError, match=f"{grpc} is the gRPC port, not HTTP: use -i grpc"
    ):
        TritonDetectNetClient(grpc, MODEL, protocol="http")
    with pytest.raises(
        ServerUnavailableError, match=f"{http} is the HTTP port, not gRPC: use -i http"
    ):
        TritonDetectNetClient(http, MODEL, protocol="grpc", backoff_s=0.01)
    argv = ["infer", images[0], "-m", MODEL, "-u", grpc, "--output_path", str(tmp_path)]
    assert main([*argv, "--no-progress"]) == 2  # tritonclient's HTTPParseError before
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is the gRPC port" in err and "Traceback" not in err


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_model_version_must_be_a_positive_integer(
    demo_server,  # noqa: F811
    images,
    protocol,
    tmp_path,
    capsys,
):
    from cvlab.cli import main

    url = demo_server.http_url if protocol == "http" else demo_server.grpc_url
    with pytest.raises(ValueError, match="model version must be a positive integer.*'abc'"):
        TritonDetectNetClient(url, MODEL, "abc", protocol)
    with pytest.raises(ModelNotReadyError, match="version 7"):  # a number the server lacks
        TritonDetectNetClient(url, MODEL, "7", protocol)
    argv = ["infer", images[0], "-m", MODEL, "-u", url, "-i", protocol, "-x", "abc"]
    argv += ["--output_path", str(tmp_path)]
    assert main([*argv, "--no-progress"]) == 2  # gRPC used to raise INVALID_ARGUMENT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "positive integer" in err


def test_class_count_is_checked_before_any_request(demo_server):  # noqa: F811
    from cvlab.triton.client import ClassCountError

    client = _client(demo_server, "http")
    before = _success_count(demo_server)
    client.check_classes(["person", "bag", "face"])
    with pytest.raises(ClassCountError, match="has 3 classes .* the config names 2: person, bag"):
        client.check_classes(["person", "bag"], source="the config")
    assert _success_count(demo_server) == before
    client.close()


def test_sigterm_raises_keyboard_interrupt_inside_the_block_only():
    from cvlab.triton.client import sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this at once
    assert signal.getsignal(signal.SIGTERM) is before


def test_cli_refuses_zero_batch_and_concurrency(capsys):
    from cvlab.cli import main

    for option in ("-b", "--concurrency"):
        with pytest.raises(SystemExit) as info:
            main(["infer", ".", "-m", MODEL, option, "0"])
        assert info.value.code == 2 and "must be at least 1, got 0" in capsys.readouterr().err


def test_an_interrupt_waits_for_a_safe_point():
    """A signal landing in a lock operation (threading.py's code, as inside gRPC's channel) is
    raised once that code is left: raised inside it, the lock stayed held and close() hung."""
    from cvlab.triton.client import sigterm_as_interrupt

    source = (
        "def release():\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    deadline = time.monotonic() + 0.5\n"
        "    while time.monotonic() < deadline:\n"
        "        pass\n"
        "    return 'finished'\n"
    )
    namespace = {"os": os, "signal": signal, "time": time}
    exec(compile(source, threading.__file__, "exec"), namespace)  # a lock method's frame
    done = []
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        done.append(namespace["release"]())
        time.sleep(5)  # interrupted here, at the next delivery
    assert done == ["finished"]


class FailingPostprocessor(RecordingPostprocessor):
    """Fails on its second batch, from the postprocessing thread."""

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.threads: set[str] = set()

    def batch(self, outputs, sizes, paths):
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        if self.calls == 2:
            raise RuntimeError("clustering bug")
        return super().batch(outputs, sizes, paths)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_postprocessing_error_stops_the_run_and_is_raised(demo_server, tmp_path, protocol):  # noqa: F811
    """Clustering runs off the sending thread; its error reaches the caller, no later batch is
    clustered, and the shared-memory slots are released."""
    paths = [str(p) for p in write_test_images(tmp_path / "img", 24)]
    post = FailingPostprocessor()
    with _client(demo_server, protocol, concurrency=2) as client:
        with pytest.raises(RuntimeError, match="clustering bug"):
            detect_images(client, paths, post, 1, progress=False)
        assert post.calls == 2 and post.threads == {"cvlab-postprocess"}
        assert detect_images(client, paths[:3], RecordingPostprocessor(), 1, progress=False)
    assert _our_regions() == []


def test_inference_runs_opencv_single_threaded(demo_server, tmp_path):  # noqa: F811
    """Inside the pipeline OpenCV uses one thread (the pipeline's own threads work on several
    frames); its thread count is restored afterwards."""
    seen: list[int] = []

    class Spy(RecordingPostprocessor):
        def batch(self, outputs, sizes, paths):
            seen.append(cv2.getNumThreads())
            return super().batch(outputs, sizes, paths)

    cv2.setNumThreads(2)
    try:
        paths = [str(p) for p in write_test_images(tmp_path / "img", 4)]
        with _client(demo_server, "http") as client:
            assert len(detect_images(client, paths, Spy(), 2, progress=False)) == 4
        assert seen == [1, 1] and cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(-1)  # OpenCV's default
