"""cvlab.cloud.deploy steps and the ``cvlab deploy`` / ``cvlab gcs`` / ``cvlab gke`` commands.

kubectl is the one fake here: no Kubernetes cluster can run on this machine, so a shell script
named kubectl records its argv and stdin (the tests say where they use it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml
from support.cloud import (  # noqa: F401
    BUCKET,
    closed_loopback_port,
    gcs_emulator_fixture,
    gcs_emulator_server_fixture,
)
from support.triton import MODEL, write_demo_repo

from cvlab.cli import main
from cvlab.cloud.deploy import (
    KubectlError,
    RepositoryInvalidError,
    apply_step,
    upload_step,
    validate_step,
    wait_ready_step,
)
from cvlab.cloud.gcs import list_blobs
from cvlab.cloud.manifests import TritonDeploymentConfig, render_manifests

URL = f"gs://{BUCKET}/tlt/triton-model"


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory) -> Path:
    """A valid repository with the demo model (real Keras -> ONNX, built once per process)."""
    return write_demo_repo(tmp_path_factory.mktemp("cloud-deploy") / "repo")


@pytest.fixture
def broken_repo(demo_repo, tmp_path) -> Path:
    """The demo repository with config.pbtxt claiming another input size than the ONNX model."""
    from cvlab.triton.model_repository import config_to_text, read_model_config

    repo = Path(shutil.copytree(demo_repo, tmp_path / "broken"))
    config_path = repo / MODEL / "config.pbtxt"
    config = read_model_config(config_path)  # protobuf ModelConfig
    del config.input[0].dims[:]
    config.input[0].dims.extend([3, 544, 960])
    config_path.write_text(config_to_text(config))
    return repo


def fake_kubectl(directory: Path, exit_code: int = 0, stderr: str = "") -> Path:
    """A stand-in for kubectl (no cluster can run here): records argv and stdin."""
    script = directory / "kubectl"
    script.write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s\\n" "$@" > "{directory}/argv"\n'
        f'cat > "{directory}/stdin"\n'
        f'echo "{stderr}" >&2\n'
        'echo "deployment.apps/triton created"\n'
        f"exit {exit_code}\n"
    )
    script.chmod(0o755)
    return script


def test_validate_step_accepts_the_demo_repository(demo_repo):
    report = validate_step(demo_repo)
    assert report.ok and report.models == [MODEL]
    assert report.raise_if_invalid() is report


def test_config_disagreeing_with_model_is_refused_before_upload(broken_repo, gcs_emulator):
    report = validate_step(broken_repo)
    assert not report.ok
    assert any("config.pbtxt" in p and "dims" in p for p in report.problems), report.problems
    with pytest.raises(RepositoryInvalidError, match="config.pbtxt"):
        upload_step(broken_repo, URL, client=gcs_emulator.client(), progress=False)
    assert list_blobs(URL, client=gcs_emulator.client()) == []
    assert not [r for r in gcs_emulator.requests if "/upload/" in r]


def test_apply_step_pipes_yaml_to_kubectl(tmp_path):
    manifests = render_manifests(TritonDeploymentConfig(model_repository=URL))
    kubectl = fake_kubectl(tmp_path)  # fake: no cluster here
    report = apply_step(manifests, kubectl=kubectl)
    assert report.applied and report.command[1:] == ["apply", "-f", "-"]
    assert (tmp_path / "argv").read_text().split() == ["apply", "-f", "-"]
    assert list(yaml.safe_load_all((tmp_path / "stdin").read_text())) == manifests
    assert "created" in report.output


def test_apply_step_without_kubectl_prints_only(tmp_path):
    manifests = render_manifests(TritonDeploymentConfig(model_repository=URL))
    report = apply_step(manifests, kubectl=tmp_path / "no-kubectl")
    assert not report.applied and "not found" in report.reason
    assert list(yaml.safe_load_all(report.yaml)) == manifests
    assert not apply_step(manifests, apply=False).applied


def test_failing_kubectl_raises_with_its_stderr(tmp_path):
    kubectl = fake_kubectl(tmp_path, exit_code=1, stderr="forbidden: no RBAC")  # fake kubectl
    with pytest.raises(KubectlError, match="forbidden: no RBAC"):
        apply_step(render_manifests(TritonDeploymentConfig(model_repository=URL)), kubectl=kubectl)


def test_wait_ready_times_out_on_a_closed_port():
    report = wait_ready_step(f"127.0.0.1:{closed_loopback_port()}", timeout=0.6, interval=0.2)
    assert not report.ready and report.attempts >= 2
    assert "refused" in report.last_status.lower()
    with pytest.raises(TimeoutError, match="not ready"):
        wait_ready_step(
            f"127.0.0.1:{closed_loopback_port()}", timeout=0.2, interval=0.1, raise_on_timeout=True
        )


def test_wait_ready_reports_http_status_of_a_non_triton_server(gcs_emulator):
    # The emulator is a real HTTP server without Triton's endpoints: 404, never ready.
    report = wait_ready_step(gcs_emulator.endpoint, timeout=0.3, interval=0.1, model_name="m")
    assert not report.ready and "404" in report.last_status


def test_cli_deploy_uploads_and_applies(demo_repo, gcs_emulator, tmp_path, capsys):
    kubectl = fake_kubectl(tmp_path)  # fake: no cluster here
    out_yaml = tmp_path / "triton.yaml"
    args = ["cloud", "deploy", "--model-repository", str(demo_repo), "--gcs", URL, "--no-progress"]
    code = main([*args, "--apply", "--kubectl", str(kubectl), "--manifests-out", str(out_yaml)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "deployment.apps/triton created" in printed
    assert {b.path for b in list_blobs(URL, client=gcs_emulator.client())} == {
        p.relative_to(demo_repo).as_posix() for p in demo_repo.rglob("*") if p.is_file()
    }
    applied = list(yaml.safe_load_all((tmp_path / "stdin").read_text()))
    assert applied == list(yaml.safe_load_all(out_yaml.read_text()))
    container = applied[0]["spec"]["template"]["spec"]["containers"][0]
    assert f"--model-repository={URL}" in container["args"]
    # Second run: nothing to send, manifests printed (no --apply).
    assert main(args) == 0
    printed = capsys.readouterr().out
    n_files = sum(1 for p in demo_repo.rglob("*") if p.is_file())
    assert f"0 transferred (0 bytes, 0 resumable), {n_files} unchanged" in printed
    assert "kind: HorizontalPodAutoscaler" in printed


def test_cli_deploy_exits_1_when_the_server_never_gets_ready(demo_repo, gcs_emulator, capsys):
    url = f"127.0.0.1:{closed_loopback_port()}"
    args = ["cloud", "deploy", "--model-repository", str(demo_repo), "--gcs", URL, "--no-progress"]
    assert main([*args, "--wait-ready", url, "--timeout", "0.3"]) == 1
    assert "ready=False" in capsys.readouterr().out
    assert main([*args, "--smoke-images", str(demo_repo)]) == 2
    assert "--wait-ready" in capsys.readouterr().err


def test_cli_deploy_refuses_broken_repository(broken_repo, gcs_emulator, capsys, monkeypatch):
    # No emulator and no credentials in the environment: the repository check comes first.
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    code = main(["cloud", "deploy", "--model-repository", str(broken_repo), "--gcs", URL])
    err = capsys.readouterr().err
    assert code == 2 and "config.pbtxt" in err and "credentials" not in err
    assert list_blobs(URL, client=gcs_emulator.client()) == []


def test_cli_gcs_upload_ls_verify_download(gcs_emulator, tmp_path, capsys):
    src = tmp_path / "src"
    (src / "m" / "1").mkdir(parents=True)
    (src / "m" / "config.pbtxt").write_text('name: "m"\n')
    (src / "m" / "1" / "model.onnx").write_bytes(os.urandom(100))
    host = ["--emulator-host", gcs_emulator.endpoint, "--no-progress"]
    assert main(["cloud", "upload", str(src), URL, *host]) == 0
    assert "2 transferred" in capsys.readouterr().out
    assert main(["cloud", "ls", URL, *host]) == 0
    listing = capsys.readouterr().out
    assert "m/config.pbtxt" in listing and "m/1/model.onnx" in listing
    assert main(["cloud", "verify", str(src), URL, *host]) == 0
    (src / "m" / "extra.txt").write_text("x")
    assert main(["cloud", "verify", str(src), URL, *host]) == 1
    assert "missing_remote" in capsys.readouterr().out
    assert main(["cloud", "download", URL, str(tmp_path / "dst"), *host]) == 0
    assert (tmp_path / "dst" / "m" / "config.pbtxt").read_text() == 'name: "m"\n'
    assert main(["cloud", "ls", "gs://no-such-bucket/x", *host]) == 2
    assert "'no-such-bucket'" in capsys.readouterr().err


def test_cli_gke_script(capsys):
    assert (
        main(["cloud", "gke-script", "--project", "p1", "--cluster", "c1", "--max-nodes", "4"]) == 0
    )
    out = capsys.readouterr().out
    assert "--max-nodes 4" in out and "get-credentials c1 --project p1" in out
    assert "istio-ingressgateway" in out
    assert main(["cloud", "gke-script", "--project", "p", "--zone", "europe-west4-a"]) == 2
    capsys.readouterr()
    assert main(["cloud", "manifests", "--model-repository", URL, "--istio"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["kind"] for d in docs][-2:] == ["Gateway", "VirtualService"]
    with pytest.raises(SystemExit) as exit_info:  # argparse: --model-repository is required
        main(["cloud", "manifests"])
    assert exit_info.value.code == 2 and "--model-repository" in capsys.readouterr().err
