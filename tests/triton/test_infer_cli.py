"""``cvlab infer`` as a drop-in for the lab's ``tao_client.py`` command (issue 15, items 1-4).

Against a real local Triton listening on plain HTTP/gRPC: the lab's two inference commands run
unchanged (``tao_client.py`` replaced by ``cvlab infer``, the ingress address by the local
server), every option spelling of the lab client works, output tensors named with and without
``:0`` both work, ``-i https`` is plain HTTP, and TLS (``--ssl`` and its certificate options,
through a TLS-terminating proxy in front of the server) fails once, clearly, when it cannot work.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import shlex
import shutil
import socket
import ssl
import threading
from pathlib import Path

import numpy as np
import pytest
from support.triton import INPUT_SIZE, demo_onnx_path, write_test_images

from cvlab.cli import build_parser, main
from cvlab.inference.clustering_config import PEOPLENET_IR_CONFIG, PEOPLENET_RGB_CONFIG

pytestmark = pytest.mark.server

LAB_MODEL = "peoplenet_tlt"  # the model name of the lab's commands
COLON_MODEL = "peoplenet_tlt_colon"  # the same model, outputs named output_cov/Sigmoid:0 ...
LAB_BATCH = 16  # the lab's -b 16 needs max_batch_size >= 16

# The lab's commands as printed in the lab text (RGB, then IR).
LAB_RGB_COMMAND = r"""
python3 ${TLT_TRITON_REPO_ROOT}/tlt_triton/python/entrypoints/tlt_client.py ../inference_images/rgb \
        -m peoplenet_tlt \
        -x 1 -b 16 --mode DetectNet_v2 \
        -i https -u 34.134.191.228:80 --async \
        --output_path ../inference_images_out \
        --postprocessing_config ../inference_config/clustering_config_peoplenet_rgb.prototxt
"""
LAB_IR_COMMAND = r"""
python3 ${TLT_TRITON_REPO_ROOT}/tlt_triton/python/entrypoints/tlt_client.py directory_to_test_images \
        -m peoplenet_tlt \
        -x 1 -b 16 --mode DetectNet_v2 \
        --class_list person \
        -i https -u 34.141.169.102:80 --async \
        --output_path directory_to_test_images_output \
        --postprocessing_config inference_config/clustering_config_peoplenet_ir.prototxt
"""


# --- models and servers ---------------------------------------------------------------------------
def _colon_onnx(src: Path, dst: Path) -> Path:
    """``src`` with every graph output renamed ``NAME:0`` (as the current lab client names them)."""
    import onnx

    model = onnx.load(str(src))
    rename = {o.name: f"{o.name}:0" for o in model.graph.output}
    for node in model.graph.node:
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                names[i] = rename.get(name, name)
    for out in model.graph.output:
        out.name = rename[out.name]
    onnx.save(model, str(dst))
    return dst


def _write_model(repo: Path, name: str, onnx_path: Path, num_classes: int, colon: bool) -> None:
    from cvlab.triton.model_repository import peoplenet_spec, write_model_repository

    spec = peoplenet_spec(name, num_classes, INPUT_SIZE, LAB_BATCH)
    if colon:
        spec.outputs = [(f"{n}:0", dims) for n, dims in spec.outputs]
    write_model_repository(repo, spec, onnx_path, target="python")


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    """Triton on plain HTTP/gRPC: the 3-class demo model as ``peoplenet_tlt`` and, with outputs
    named ``...:0``, as ``peoplenet_tlt_colon``."""
    from cvlab.triton.server import TritonServer

    repo = tmp_path_factory.mktemp("lab_repo")
    _write_model(repo, LAB_MODEL, demo_onnx_path(), 3, colon=False)
    colon = _colon_onnx(demo_onnx_path(), tmp_path_factory.mktemp("colon") / "demo.onnx")
    _write_model(repo, COLON_MODEL, colon, 3, colon=True)
    with TritonServer(repo, startup_timeout=90) as server:
        yield server
    shutil.rmtree(repo, ignore_errors=True)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """20 JPEGs: two requests of the lab's -b 16, the second one partial."""
    directory = tmp_path_factory.mktemp("images") / "rgb"
    write_test_images(directory, 20)
    return directory


def _labels(out: Path) -> dict[str, list[list[str]]]:
    return {
        p.stem: [line.split() for line in p.read_text().splitlines()]
        for p in sorted((out / "infer_labels").glob("*.txt"))
    }


def _assert_same_labels(got: dict, want: dict) -> None:
    """Same frames, same boxes (class, box, confidence) within float noise of server batching."""
    assert sorted(got) == sorted(want)
    for stem in want:
        a, b = got[stem], want[stem]
        assert len(a) == len(b), stem
        assert [r[0] for r in a] == [r[0] for r in b], stem
        if a:
            fa = np.array([[float(v) for v in r[4:8] + r[15:]] for r in a])
            fb = np.array([[float(v) for v in r[4:8] + r[15:]] for r in b])
            np.testing.assert_allclose(fa, fb, atol=1e-2, err_msg=stem)


@pytest.fixture(scope="module")
def reference(lab_server, images, tmp_path_factory) -> dict:
    """Labels of ``images`` from the library path (plain names, HTTP, RGB clustering, -b 4)."""
    from cvlab.triton.pipeline import run_inference

    out = tmp_path_factory.mktemp("reference")
    summary = run_inference(
        str(images), LAB_MODEL, lab_server.http_url, batch_size=4, output_path=out,
        postprocessing_config=PEOPLENET_RGB_CONFIG, progress=False,
    )  # fmt: skip
    assert not summary.errors
    labels = _labels(out)
    assert len(labels) == 20 and any(labels.values())  # the random demo model fires somewhere
    return labels


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("cvlab infer: error: "), lines[0]
    return lines[0]


# --- the lab's commands, unchanged ----------------------------------------------------------------
def _lab_argv(command: str, ip_port: str, url: str) -> list[str]:
    """The lab's command with ``python3 .../tlt_client.py`` -> ``cvlab infer``, ``-u`` local."""
    tokens = shlex.split(command.replace("\\\n", " "))
    assert tokens[:2] == [
        "python3",
        "${TLT_TRITON_REPO_ROOT}/tlt_triton/python/entrypoints/tlt_client.py",
    ]
    argv = tokens[2:]
    assert argv.count(ip_port) == 1
    return ["infer", *[url if t == ip_port else t for t in argv]]


def test_lab_rgb_command_runs_unchanged(lab_server, images, reference, tmp_path, monkeypatch):
    """``-i https -u <ip>:80`` against plain HTTP; the lab's relative paths; -b 16; --async."""
    work = tmp_path / "lab"
    shutil.copytree(images, tmp_path / "inference_images" / "rgb")
    (tmp_path / "inference_config").mkdir()
    shutil.copy(PEOPLENET_RGB_CONFIG, tmp_path / "inference_config")
    work.mkdir()
    monkeypatch.chdir(work)
    argv = _lab_argv(LAB_RGB_COMMAND, "34.134.191.228:80", lab_server.http_url)
    assert main(argv) == 0
    out = tmp_path / "inference_images_out"
    _assert_same_labels(_labels(out), reference)
    assert sorted(p.stem for p in (out / "infer_images").glob("*.jpg")) == sorted(reference)


@pytest.fixture(scope="module")
def ir_server(tmp_path_factory):
    """The lab's IR deployment: a one-class (person) model served as ``peoplenet_tlt``."""
    from cvlab.export.demo_model import write_demo_onnx
    from cvlab.triton.server import TritonServer

    onnx_path = write_demo_onnx(tmp_path_factory.mktemp("ir_onnx") / "ir.onnx", 1, INPUT_SIZE)
    repo = tmp_path_factory.mktemp("ir_repo")
    _write_model(repo, LAB_MODEL, onnx_path, 1, colon=False)
    with TritonServer(repo, startup_timeout=90) as server:
        yield server
    shutil.rmtree(repo, ignore_errors=True)


def test_lab_ir_command_runs_unchanged(ir_server, images, tmp_path, monkeypatch):
    """``--class_list person`` with the IR clustering config and a one-class model."""
    from cvlab.triton.pipeline import run_inference

    shutil.copytree(images, tmp_path / "directory_to_test_images")
    (tmp_path / "inference_config").mkdir()
    shutil.copy(PEOPLENET_IR_CONFIG, tmp_path / "inference_config")
    monkeypatch.chdir(tmp_path)
    argv = _lab_argv(LAB_IR_COMMAND, "34.141.169.102:80", ir_server.http_url)
    assert main(argv) == 0
    out = tmp_path / "directory_to_test_images_output"
    labels = _labels(out)
    assert len(labels) == 20
    assert {row[0] for rows in labels.values() for row in rows} <= {"person"}
    ref = tmp_path / "ref"
    run_inference(
        str(images), LAB_MODEL, ir_server.http_url, batch_size=16, output_path=ref,
        postprocessing_config=PEOPLENET_IR_CONFIG, class_list=["person"], progress=False,
    )  # fmt: skip
    _assert_same_labels(labels, _labels(ref))


# --- every option spelling, both output-name spellings --------------------------------------------
def _variants(http: str, grpc: str, model: str, out: Path) -> dict[str, list[str]]:
    """The lab client's options, once per spelling (short, hyphen, underscore; case variants)."""
    cfg = str(PEOPLENET_RGB_CONFIG)
    return {
        "short": [
            "-m", model, "-x", "1", "-b", "4", "-a", "-v", "-i", "HTTP", "-u", http,
            "--mode", "DetectNet_v2", "--output_path", str(out),
            "--postprocessing_config", cfg, "--class_list", "person,bag,face",
        ],
        "hyphen": [
            "--model-name", model, "--model-version", "1", "--batch-size", "4", "--async",
            "--verbose", "--protocol", "https", "--url", http, "--mode", "detectnet_v2",
            "--output-path", str(out), "--postprocessing-config", cfg,
            "--class-list", "person,bag,face",
        ],
        "underscore": [
            "--model_name", model, "--model_version", "1", "--batch_size", "4",
            "--protocol", "Http", "--url", http, "--mode", "DETECTNET_V2",
            "--output_path", str(out), "--postprocessing_config", cfg,
            "--class_list", "person,bag,face",
        ],
        "grpc-streaming": [
            "-m", model, "-x", "1", "-b", "4", "-i", "gRPC", "--streaming", "-u", grpc,
            "--output-path", str(out), "--postprocessing-config", cfg,
        ],
        "grpc-async": [
            "--model_name", model, "-b", "4", "--protocol", "GRPC", "--async", "--url", grpc,
            "--output_path", str(out), "--postprocessing_config", cfg,
        ],
    }  # fmt: skip


VARIANTS = ["short", "hyphen", "underscore", "grpc-streaming", "grpc-async"]


def test_every_lab_option_spelling_parses():
    """Each spelling lands in the same option (no server needed)."""
    parser = build_parser()
    parsed = {
        name: vars(parser.parse_args(["infer", "imgs", *argv]))
        for name, argv in _variants("h:1", "g:2", "m", Path("o")).items()
    }
    for name, args in parsed.items():
        assert args["model_name"] == "m", name
        assert args["output_path"] == "o", name
        assert args["postprocessing_config"] == str(PEOPLENET_RGB_CONFIG), name
        assert args["batch_size"] == 4, name
    assert [parsed[n]["protocol"] for n in VARIANTS] == ["HTTP", "https", "Http", "gRPC", "GRPC"]
    assert [parsed[n]["url"] for n in VARIANTS] == ["h:1", "h:1", "h:1", "g:2", "g:2"]
    assert [parsed[n]["async_mode"] for n in VARIANTS] == [True, True, False, False, True]
    assert [parsed[n]["verbose"] for n in VARIANTS] == [True, True, False, False, False]
    assert parsed["grpc-streaming"]["streaming"] and not parsed["short"]["streaming"]
    assert parsed["short"]["model_version"] == parsed["underscore"]["model_version"] == "1"
    assert parsed["hyphen"]["class_list"] == parsed["underscore"]["class_list"] == "person,bag,face"


@pytest.mark.parametrize("model", [LAB_MODEL, COLON_MODEL], ids=["plain-names", "colon-0-names"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_lab_option_spelling_and_tensor_name_runs(
    lab_server, images, reference, tmp_path, capsys, variant, model
):
    out = tmp_path / "out"
    argv = _variants(lab_server.http_url, lab_server.grpc_url, model, out)[variant]
    assert main(["infer", str(images), "--no-progress", *argv]) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert "20 image(s)" in captured.out
    if "-v" in argv or "--verbose" in argv:
        assert "TLS off" in captured.err  # -i https / HTTP: plain HTTP
    _assert_same_labels(_labels(out), reference)


def test_models_are_served_under_both_output_spellings(lab_server):
    import tritonclient.http as http

    client = http.InferenceServerClient(lab_server.http_url)
    names = {
        m: sorted(o["name"] for o in client.get_model_metadata(m)["outputs"])
        for m in (LAB_MODEL, COLON_MODEL)
    }
    client.close()
    assert names[LAB_MODEL] == ["output_bbox/BiasAdd", "output_cov/Sigmoid"]
    assert names[COLON_MODEL] == ["output_bbox/BiasAdd:0", "output_cov/Sigmoid:0"]


# --- clear one-line refusals ------------------------------------------------------------------------
OTHER_MODE_OPTIONS = [
    ("--img_dirs", "VisualChangeNet"),
    ("--img-dirs", "Foundationpose"),
    ("--dataset_convert_config", "Pose_classification"),
    ("--dataset-convert-config", "Pose_classification"),
    ("--test_dir", "Re_identification"),
    ("--test-dir", "Re_identification"),
    ("--obj_file", "Foundationpose"),
    ("--obj-file", "Foundationpose"),
    ("--intrinsic_file", "Foundationpose"),
    ("--intrinsic-file", "Foundationpose"),
    ("--bbox", "Foundationpose"),
]


@pytest.mark.parametrize(("option", "mode"), OTHER_MODE_OPTIONS)
def test_options_of_other_modes_fail_in_one_line(option, mode, capsys):
    argv = ["infer", "imgs", "-m", LAB_MODEL, "--mode", "DetectNet_v2", option, "x"]
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert option.replace("-", "_").lstrip("_") in line.replace("-", "_")
    assert mode in line and "mode" in line and "DetectNet_v2" in line


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--mode", "Classification"], "--mode 'Classification' is not supported: another mode"),
        (["--mode", "yolov3"], "another mode of the lab client"),
        (["--mode", "SSD"], "not a mode of the lab client"),
        (["-i", "ftp"], "expected HTTP or gRPC"),
        (["--streaming"], "--streaming is only available with gRPC"),
        (["--ssl-ca-file", "ca.pem"], "need --ssl"),
        (["--ssl", "--ssl-cert-file", "c.pem"], "go together"),
        (["--ssl", "-i", "grpc", "--ssl-insecure"], "HTTP-only"),
        (["--ssl", "--root-certificates", "missing.pem"], "--ssl-ca-file missing.pem: no such"),
    ],
)
def test_user_errors_are_one_line(extra, expected, capsys):
    assert main(["infer", "imgs", "-m", LAB_MODEL, *extra]) == 2
    assert expected in _one_error_line(capsys.readouterr().err)


# --- TLS: only with --ssl; a failed handshake is one clear error, not retried --------------------
@pytest.mark.parametrize("protocol", ["https", "grpc"])
def test_ssl_against_a_plain_server_says_tls_and_is_not_retried(
    lab_server, images, tmp_path, capsys, protocol
):
    url = lab_server.http_url if protocol == "https" else lab_server.grpc_url
    argv = ["infer", str(images), "-m", LAB_MODEL, "-i", protocol, "-u", url, "--ssl"]
    assert main([*argv, "--output_path", str(tmp_path), "--no-progress"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "TLS handshake" in line and "drop --ssl" in line
    assert "attempts" not in line and "not reachable" not in line  # the retry path's words


def test_tls_failure_makes_one_connection(tmp_path, capsys):
    """A plain HTTP listener counts connections: a TLS client that retried would come back."""
    image = write_test_images(tmp_path / "one", 1)[0]
    accepted = []
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    port = listener.getsockname()[1]

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(conn)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        argv = ["infer", str(image), "-m", LAB_MODEL, "-u", f"127.0.0.1:{port}", "--ssl"]
        assert main([*argv, "--output_path", str(tmp_path / "out")]) == 2
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert "TLS handshake" in _one_error_line(capsys.readouterr().err)
    assert len(accepted) == 1


def _write_pki(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, one for another host name and a client
    certificate (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(cn, key, issuer, issuer_key, *, ca=False, san=None, usage=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(path: Path, obj) -> Path:
        if hasattr(obj, "private_bytes"):
            data = obj.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        else:
            data = obj.public_bytes(serialization.Encoding.PEM)
        path.write_bytes(data)
        return path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("cvlab test CA", ca_key, name("cvlab test CA"), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    loopback = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = cert(
        "localhost", server_key, ca.subject, ca_key,
        san=loopback, usage=ExtendedKeyUsageOID.SERVER_AUTH,
    )  # fmt: skip
    other = cert(
        "elsewhere", server_key, ca.subject, ca_key,
        san=[x509.DNSName("elsewhere.invalid")], usage=ExtendedKeyUsageOID.SERVER_AUTH,
    )  # fmt: skip
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = cert("cvlab client", client_key, ca.subject, ca_key,
                  usage=ExtendedKeyUsageOID.CLIENT_AUTH)  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    return {
        "ca": write(directory / "ca.pem", ca),
        "server_cert": write(directory / "server.pem", server),
        "server_key": write(directory / "server.key", server_key),
        "other_cert": write(directory / "other.pem", other),
        "client_cert": write(directory / "client.pem", client),
        "client_key": write(directory / "client.key", client_key),
    }


class TLSProxy:
    """Terminates TLS on 127.0.0.1 and forwards the bytes to a plain local port (asyncio)."""

    def __init__(self, upstream_port: int, context: ssl.SSLContext):
        self.upstream_port = upstream_port
        self.context = context
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(lambda loop, ctx: None)  # failed handshakes are expected
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        self.server = future.result(10)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _start(self):
        return await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context)

    async def _handle(self, reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return

        async def pump(src, dst):
            try:
                while data := await src.read(1 << 16):
                    dst.write(data)
                    await dst.drain()
            except (OSError, ssl.SSLError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def close(self):
        async def stop():
            self.server.close()
            for writer in list(getattr(self.server, "_clients", ())):  # noqa: B009
                writer.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return _write_pki(tmp_path_factory.mktemp("pki"))


def _server_context(pki, *, client_auth: bool, cert: str = "server_cert") -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki[cert], pki["server_key"])
    context.set_alpn_protocols(["h2", "http/1.1"])  # gRPC insists on h2
    if client_auth:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki["ca"])
    return context


@pytest.fixture(scope="module")
def tls_proxies(lab_server, pki):
    """TLS in front of the server's HTTP and gRPC ports, without and with client certificates."""
    proxies = {
        (protocol, mutual): TLSProxy(
            lab_server.http_port if protocol == "http" else lab_server.grpc_port,
            _server_context(pki, client_auth=mutual),
        )
        for protocol in ("http", "grpc")
        for mutual in (False, True)
    }
    proxies["http", "elsewhere"] = TLSProxy(
        lab_server.http_port, _server_context(pki, client_auth=False, cert="other_cert")
    )
    yield {key: proxy.port for key, proxy in proxies.items()}
    for proxy in proxies.values():
        proxy.close()


def _tls_infer(images, out, protocol, port, *options) -> int:
    argv = [
        "infer", str(images), "-m", LAB_MODEL, "-b", "4", "-i", protocol, "-u", f"127.0.0.1:{port}",
        "--output_path", str(out), "--postprocessing_config", str(PEOPLENET_RGB_CONFIG),
        "--no-progress", *options,
    ]  # fmt: skip
    return main(argv)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_ssl_with_a_ca_file_reaches_a_tls_server(
    tls_proxies, pki, images, reference, tmp_path, capsys, protocol
):
    port = tls_proxies[protocol, False]
    ca_option = "--ssl-ca-file" if protocol == "http" else "--root-certificates"
    rc = _tls_infer(images, tmp_path, protocol, port, "--ssl", ca_option, str(pki["ca"]))
    assert rc == 0, capsys.readouterr().err
    _assert_same_labels(_labels(tmp_path), reference)
    # without the CA the server's certificate is unknown: one TLS error, not retried
    assert _tls_infer(images, tmp_path / "x", protocol, port, "--ssl") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "TLS handshake" in line and "attempts" not in line
    # -i https / no --ssl against a TLS port: no TLS (the lab client's meaning) -> not TLS's fault
    if protocol == "http":
        assert _tls_infer(images, tmp_path / "y", "https", port) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert "closed the connection" in line and "add --ssl" in line


def test_ssl_insecure_skips_the_host_name_check(tls_proxies, pki, images, tmp_path, capsys):
    port = tls_proxies["http", "elsewhere"]  # its certificate names elsewhere.invalid
    ca = ["--ssl", "--ssl_ca_file", str(pki["ca"])]
    assert _tls_infer(images, tmp_path / "a", "http", port, *ca) == 2
    assert "TLS handshake" in _one_error_line(capsys.readouterr().err)
    rc = _tls_infer(images, tmp_path / "b", "http", port, *ca, "--ssl-insecure")
    assert rc == 0, capsys.readouterr().err


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_client_certificates_for_mutual_tls(
    tls_proxies, pki, images, reference, tmp_path, capsys, protocol
):
    port = tls_proxies[protocol, True]
    if protocol == "http":
        client = [
            "--ssl-cert-file",
            str(pki["client_cert"]),
            "--ssl-key-file",
            str(pki["client_key"]),
        ]
    else:
        client = [
            "--certificate-chain",
            str(pki["client_cert"]),
            "--private_key",
            str(pki["client_key"]),
        ]
    ca = ["--ssl", "--ssl-ca-file", str(pki["ca"])]
    assert _tls_infer(images, tmp_path, protocol, port, *ca, *client) == 0, capsys.readouterr().err
    _assert_same_labels(_labels(tmp_path), reference)
    assert _tls_infer(images, tmp_path / "x", protocol, port, *ca) == 2  # no client certificate
    line = _one_error_line(capsys.readouterr().err)
    assert "TLS handshake" in line and "attempts" not in line


def test_infer_without_url_uses_the_running_serve_record(tmp_path, monkeypatch, capsys):
    """No -u: the URL the running `cvlab triton serve` recorded is used (here a port nobody
    listens on, so the one-line error names it)."""
    import json
    import os

    import cv2
    import numpy as np

    from cvlab.cli import main
    from cvlab.triton.server import free_port, last_served_url

    port = free_port()
    record = tmp_path / "serve.json"
    monkeypatch.setenv("CVLAB_SERVE_FILE", str(record))
    record.write_text(
        json.dumps({"http": f"127.0.0.1:{port}", "grpc": f"127.0.0.1:{port}", "pid": os.getpid()})
    )
    assert last_served_url() == f"127.0.0.1:{port}"
    image = tmp_path / "a.jpg"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    assert main(["infer", str(image), "-m", "m", "--output_path", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and err.count("\n") == 1


# --- the anchor client's clustering from the command line ---------------------------------------
def test_clustering_option_selects_the_lab_clients_dbscan(
    lab_server, images, reference, tmp_path, capsys
):
    """``--clustering dbscan_legacy`` gives run_inference's dbscan_legacy labels (the
    tao-toolkit-triton-apps client's rules); the default stays TAO's dbscan; --help says why."""
    import warnings

    from cvlab.inference.clustering_config import load_clustering_config
    from cvlab.triton.pipeline import run_inference

    want = tmp_path / "want"
    legacy = load_clustering_config(PEOPLENET_RGB_CONFIG, algorithm="dbscan_legacy")
    run_inference(
        str(images), LAB_MODEL, lab_server.http_url, batch_size=4, output_path=want,
        postprocessing_config=legacy, progress=False,
    )  # fmt: skip
    out = tmp_path / "out"
    argv = ["infer", str(images), "-m", LAB_MODEL, "-u", lab_server.http_url, "-b", "4",
            "--no-progress", "--output_path", str(out), "--clustering", "dbscan_legacy",
            "--postprocessing_config", str(PEOPLENET_RGB_CONFIG)]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the float min_samples is dbscan_legacy's meaning
        assert main(argv) == 0, capsys.readouterr().err
    _assert_same_labels(_labels(out), _labels(want))
    assert _labels(out) != reference  # the random demo model's cells cluster differently

    parser = build_parser()
    assert vars(parser.parse_args(["infer", "x", "-m", "m"]))["clustering"] == "dbscan"
    with pytest.raises(SystemExit):
        main(["infer", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "dbscan_legacy: the lab's tao_client.py box for box" in text
    assert "not the default because those are not TAO's rules" in text


def test_the_lab_clients_prototxt_parser_refuses_an_extra_field():
    """Why --clustering is an option and not a prototxt field: tao-toolkit-triton-apps reads
    the clustering prototxt with text_format.Merge (detectnet_processor.py:50), which refuses
    unknown fields."""
    from google.protobuf import text_format

    from cvlab.protos.triton_apps import postprocessor_config_pb2 as pb

    text = PEOPLENET_RGB_CONFIG.read_text()
    text_format.Merge(text, pb.PostprocessingConfig())
    with pytest.raises(text_format.ParseError, match="clustering_algorithm"):
        text_format.Merge(
            text + '\nclustering_algorithm: "dbscan_legacy"\n', pb.PostprocessingConfig()
        )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["-u", ":99999"], "server address ':99999': no host name"),
        (["-u", "127.0.0.1:99999"], "port 99999 is not in 1-65535"),
        (["-u", "127.0.0.1:99999", "-i", "grpc"], "port 99999 is not in 1-65535"),
        (["--ssl", "--ssl-ca-file", "GARBAGE", "-u", "127.0.0.1:9"], "TLS CA file"),
        (["--ssl", "--ssl-ca-file", "GARBAGE", "-i", "grpc", "-u", "127.0.0.1:9"], "TLS CA file"),
        (["--timeout", "nan"], "--timeout: expected a finite number, got 'nan'"),
        (["--timeout", "0"], "--timeout: must be above 0"),
    ],
)
def test_bad_addresses_and_files_are_one_line_without_tracebacks(extra, expected, tmp_path):
    """Issue 20 item 11: no tritonclient 'Exception ignored' traceback, no gRPC log lines, and
    gRPC never wraps port 99999 (to 34463); a real `cvlab infer` process."""
    import subprocess
    import sys

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    write_test_images(tmp_path / "images", 1)
    argv = [sys.executable, "-m", "cvlab", "infer", str(tmp_path / "images"), "-m", LAB_MODEL]
    argv += [str(garbage) if a == "GARBAGE" else a for a in extra]
    done = subprocess.run(
        [*argv, "--output_path", str(tmp_path / "out"), "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert expected in lines[-1], done.stderr
    if not extra[0].startswith("--timeout"):  # argparse errors come after its usage lines
        assert len(lines) == 1, done.stderr
    assert "34463" not in done.stderr
