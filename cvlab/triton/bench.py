"""``cvlab bench triton``: end-to-end images/s of the client pipeline vs perf_analyzer's ceiling.

The client figure covers the whole pipeline (read JPEG, preprocess, infer over HTTP/gRPC with
requests in flight, postprocess) against a local tritonserver serving the demo model. The
ceiling is perf_analyzer (from the tritonclient 2.51.0 manylinux1 wheel, fetched once with
``pip download`` into ``~/.cache/cvlab/perf_analyzer``) on the same model, batch and concurrency.
Target: the client reaches at least 80 % of perf_analyzer's throughput.

Example:
    cvlab bench triton --images 64 --batch 8 --input-size 960x544 --protocol grpc
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

TARGET_RATIO = 0.8
PERF_ANALYZER_VERSION = "2.51.0"
CACHE_DIR = Path(os.environ.get("CVLAB_CACHE", Path.home() / ".cache" / "cvlab")) / "perf_analyzer"


def _lib_dir(cache: Path) -> Path:
    """libb64.so.0d and libcudart.so.12 as symlinks to the copies inside nvidia_pytriton.libs."""
    from cvlab.triton.server import _pytriton_libs

    libs = cache / "lib"
    libs.mkdir(parents=True, exist_ok=True)
    for pattern, name in (
        ("libb64-*.so.0d", "libb64.so.0d"),
        ("libcudart-*.so.12*", "libcudart.so.12"),
    ):
        found = sorted(_pytriton_libs().glob(pattern))
        link = libs / name
        if found and not link.exists():
            link.symlink_to(found[0])
    return libs


def get_perf_analyzer(cache: Path = CACHE_DIR) -> Path | None:
    """The perf_analyzer binary, downloaded and unpacked on first use; None when unavailable."""
    binary = cache / "bin" / "perf_analyzer"
    if binary.is_file():
        return binary
    wheels = cache / "wheel"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob(f"tritonclient-{PERF_ANALYZER_VERSION}-*manylinux1_x86_64.whl"))
    if not found:
        cmd = [
            sys.executable, "-m", "pip", "download", f"tritonclient=={PERF_ANALYZER_VERSION}",
            "--no-deps", "--only-binary=:all:", "--platform", "manylinux1_x86_64",
            "--python-version", "3.11", "-d", str(wheels), "-q",
        ]  # fmt: skip
        if subprocess.run(cmd, capture_output=True, text=True, timeout=300).returncode != 0:
            return None
        found = sorted(wheels.glob(f"tritonclient-{PERF_ANALYZER_VERSION}-*.whl"))
        if not found:
            return None
    member = f"tritonclient-{PERF_ANALYZER_VERSION}.data/data/bin/perf_analyzer"
    binary.parent.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_suffix(".tmp")
    with zipfile.ZipFile(found[0]) as wheel, open(tmp, "wb") as out:
        out.write(wheel.read(member))
    tmp.chmod(0o755)
    os.replace(tmp, binary)
    return binary


def run_perf_analyzer(
    binary: Path,
    model: str,
    url: str,
    protocol: str,
    batch: int,
    concurrency: int,
    request_count: int = 20,
) -> float:
    """perf_analyzer's throughput (inferences/s, i.e. images/s) for ``model`` at ``url``."""
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join(
        p for p in (str(_lib_dir(binary.parent.parent)), env.get("LD_LIBRARY_PATH", "")) if p
    )
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "perf.csv"
        cmd = [
            str(binary), "-m", model, "-u", url, "-i", protocol, "-b", str(batch),
            f"--concurrency-range={concurrency}", "--measurement-mode=count_windows",
            f"--measurement-request-count={request_count}", "--stability-percentage=50",
            "--max-trials=6", "-f", str(report),
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if result.returncode != 0 or not report.is_file():
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
            raise RuntimeError(f"perf_analyzer failed (exit {result.returncode}):\n{tail}")
        rows = list(csv.DictReader(io.StringIO(report.read_text())))
    return float(rows[0]["Inferences/Second"])


def _write_images(directory: Path, count: int, size: tuple[int, int]) -> list[str]:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 200, (size[1], size[0], 3), dtype=np.uint8)
    w, h = size
    paths = []
    for i in range(count):
        image = np.roll(base, 7 * i, axis=1)
        for k in range(3):  # bright "people" the demo model detects
            x0, y0 = (w // 4) * (k + 1) - w // 16 + 3 * i % 40, h // 4
            cv2.rectangle(image, (x0, y0), (x0 + w // 12, y0 + h // 2), (255, 255, 255), -1)
        path = directory / f"bench_{i:04d}.jpg"
        cv2.imwrite(str(path), image)
        paths.append(str(path))
    return paths


def main(argv: list[str]) -> int:
    """Print client images/s, perf_analyzer images/s and the ratio vs the 80 % target."""
    parser = argparse.ArgumentParser(prog="cvlab bench triton", description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=64, help="images per timed run")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--input-size", default="960x544", help="model input WIDTHxHEIGHT")
    parser.add_argument("--image-size", default="1280x720", help="source JPEG WIDTHxHEIGHT")
    parser.add_argument("--protocol", default="http", choices=["http", "grpc"])
    parser.add_argument("--repeats", type=int, default=2, help="timed client runs (best is kept)")
    parser.add_argument(
        "--model-width", type=int, default=8, help="demo trunk width (larger = heavier server)"
    )
    parser.add_argument("--no-perf-analyzer", action="store_true")
    args = parser.parse_args(argv)

    import pandas as pd

    from cvlab.triton.client import TritonDetectNetClient
    from cvlab.triton.demo_model import write_demo_repository
    from cvlab.triton.server import TritonServer

    input_size = tuple(int(v) for v in args.input_size.lower().split("x"))
    image_size = tuple(int(v) for v in args.image_size.lower().split("x"))
    model = "bench_demo"
    with tempfile.TemporaryDirectory(prefix="cvlab-bench-triton-") as tmp:
        tmp = Path(tmp)
        print(f"building the demo model ({input_size[0]}x{input_size[1]}) ...", flush=True)
        write_demo_repository(
            tmp / "repo", model, 3, input_size, max(args.batch, 1), width=args.model_width
        )
        paths = _write_images(tmp / "images", args.images, image_size)
        with TritonServer(tmp / "repo", startup_timeout=120) as server:
            url = server.http_url if args.protocol == "http" else server.grpc_url
            client = TritonDetectNetClient(
                url, model, protocol=args.protocol, concurrency=args.concurrency
            )
            post = client.default_postprocessor()
            client.infer_images(paths[: args.batch], args.batch, post, progress=False)  # warm-up
            best = 0.0
            for _ in range(max(1, args.repeats)):
                start = time.perf_counter()
                dets = client.infer_images(paths, args.batch, post, progress=False)
                elapsed = time.perf_counter() - start
                best = max(best, len(dets) / elapsed)
            import numpy as np

            tensor = np.random.default_rng(0).random(
                (args.batch, 3, input_size[1], input_size[0]), dtype=np.float32
            )
            batches = [tensor] * max(1, args.images // args.batch)
            start = time.perf_counter()
            client.infer_tensors(batches)
            infer_only = len(batches) * args.batch / (time.perf_counter() - start)
            rows = [{"measure": "client pipeline (read+preprocess+infer+postprocess)",
                     "images_per_s": best},
                    {"measure": "client infer only (ready tensors, async)",
                     "images_per_s": infer_only}]  # fmt: skip
            ceiling = None
            if not args.no_perf_analyzer:
                binary = get_perf_analyzer()
                if binary is None:
                    print("perf_analyzer: could not be obtained (pip download of the "
                          f"tritonclient {PERF_ANALYZER_VERSION} wheel failed)")  # fmt: skip
                else:
                    try:
                        ceiling = run_perf_analyzer(
                            binary, model, url, args.protocol, args.batch, args.concurrency
                        )
                        rows.append({"measure": "perf_analyzer (server ceiling)",
                                     "images_per_s": ceiling})  # fmt: skip
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        print(f"perf_analyzer: {exc}")
    table = pd.DataFrame(rows)
    print(
        f"model {model} {input_size[0]}x{input_size[1]} (width {args.model_width}), batch {args.batch}, "
        f"concurrency {args.concurrency}, {args.protocol}, {args.images} images of "
        f"{image_size[0]}x{image_size[1]}"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    if ceiling:
        ratio = best / ceiling
        verdict = "meets" if ratio >= TARGET_RATIO else "below"
        print(f"client / perf_analyzer = {ratio:.0%} ({verdict} the {TARGET_RATIO:.0%} target)")
        print(f"client infer only / perf_analyzer = {infer_only / ceiling:.0%}")
        if ratio < TARGET_RATIO:
            print(
                f"note: this machine has {os.cpu_count()} CPU core(s) shared by the server, the "
                "client's JPEG decoding/resizing and postprocessing; the gap between the two "
                "client figures is that CPU work competing with the server"
            )
    return 0
