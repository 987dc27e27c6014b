"""cvlab.cloud.gke: the lab's gcloud/kubectl commands, checked against the lab text itself."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from cvlab.cloud.gke import (
    EXAMPLE_CLUSTER_NAME,
    EXAMPLE_PROJECT_ID,
    GkeConfig,
    gcloud_commands,
    istio_ingress_command,
    triton_url,
)
from cvlab.resources import GKE_SETUP_NAME, LAB_GKE_COMMANDS_NAME, resource_path
from cvlab.shell import ShellSubstitution, as_shell_script, shell_join

MISSION = Path("/work/shared/MISSION.md")
#: The lab's GKE block copied verbatim into the repository (the full lab text is not shipped).
LAB_COPY = resource_path(LAB_GKE_COMMANDS_NAME)


def lab_text() -> str:
    return LAB_COPY.read_text()


def test_repository_copy_matches_the_lab_text():
    if not MISSION.is_file():
        pytest.skip("the original lab text is only on the development machine")
    mission = MISSION.read_text()
    copy = lab_text()
    assert lab_cluster_commands(copy) == lab_cluster_commands(mission)
    assert re.search(r"INGRESS_HOST=.*", copy).group(0) in mission


def lab_cluster_commands(text: str) -> list[list[str]]:
    """The GKE block of the lab, with its exports substituted, as argument lists."""
    blocks = re.findall(r"```\n(.*?)```", text, re.S) or [text]
    block = next(b for b in blocks if "node-pools" in b)
    exports = dict(re.findall(r"^export (\w+)=(\S+)$", block, re.M))
    body = re.sub(r"\\\n", " ", block)  # line continuations
    commands = []
    for line in body.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "export ")):
            continue
        for name, value in exports.items():
            line = line.replace("${" + name + "}", value)
        commands.append(shlex.split(line))
    return commands


def test_lab_example_reproduces_the_lab_commands():
    expected = lab_cluster_commands(lab_text())
    assert len(expected) == 6
    assert gcloud_commands(GkeConfig.lab_example()) == expected


def test_istio_lookup_matches_the_lab():
    text = lab_text()
    inner = re.search(r"INGRESS_HOST=\$\((kubectl [^\n]*)\)", text)
    assert inner is not None
    assert istio_ingress_command() == shlex.split(inner.group(1))
    assert triton_url(" '203.0.113.10' \n") == "203.0.113.10:80"
    with pytest.raises(ValueError, match="istio-ingressgateway"):
        triton_url("")


def test_config_changes_flow_into_commands():
    config = GkeConfig(
        project_id="my-proj",
        cluster_name="cv",
        zone="europe-west4-a",
        region="europe-west4",
        max_nodes=5,
        accelerator_count=2,
        gpu_machine_type="a2-highgpu-2g",
    )
    create, pool, creds, *_ = gcloud_commands(config)
    assert "--zone=europe-west4-a" in create and create[create.index("--project") + 1] == "my-proj"
    assert pool[pool.index("--accelerator") + 1] == "type=nvidia-tesla-a100,count=2"
    assert pool[pool.index("--max-nodes") + 1] == "5"
    assert pool[pool.index("--machine-type") + 1] == "a2-highgpu-2g"
    assert creds[4] == "cv"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"min_nodes": 3, "max_nodes": 2}, "min_nodes"),
        ({"gpu_num_nodes": 4}, "gpu_num_nodes"),
        ({"zone": "europe-west4-a"}, "zone"),
        ({"project_id": ""}, "project_id"),
    ],
)
def test_bad_config_names_the_field(kwargs, field):
    base = {"project_id": "p", "cluster_name": "c"}
    with pytest.raises(ValueError, match=field):
        GkeConfig(**{**base, **kwargs})


def test_shell_script_runs_the_same_commands(tmp_path):
    """Runs the generated script with bash; gcloud/kubectl are fakes (none can run here) that
    record their argv, one argument per line."""
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("gcloud", "kubectl"):
        fake = bin_dir / tool
        fake.write_text(
            "#!/usr/bin/env bash\n"
            'if [ "$*" = "config get-value account" ]; then echo "me@example.com"; exit 0; fi\n'
            f'{{ echo "{tool}"; printf "%s\\n" "$@"; echo "--END--"; }} >> "{log}"\n'
        )
        fake.chmod(0o755)
    commands = gcloud_commands(GkeConfig.lab_example()) + [istio_ingress_command()]
    script = tmp_path / "setup.sh"
    script.write_text(as_shell_script(commands))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    subprocess.run(["bash", str(script)], check=True, env=env, timeout=30)
    calls = [c.strip("\n").split("\n") for c in log.read_text().split("--END--\n") if c]
    expected = [
        [a if not isinstance(a, ShellSubstitution) else "me@example.com" for a in cmd]
        for cmd in commands
    ]
    assert calls == expected
    assert '--user "$(gcloud config get-value account)"' in script.read_text()


def test_shipped_setup_script_is_current():
    """cvlab/resources/k8s/gke_setup.sh is the placeholder example's script (regenerate when this
    fails); the lab's own project and cluster appear only in its verbatim copy."""
    shipped = resource_path(GKE_SETUP_NAME).read_text()
    assert shipped == as_shell_script(gcloud_commands(GkeConfig.example()))
    lab = GkeConfig.lab_example()
    assert lab.project_id not in shipped and lab.cluster_name not in shipped
    assert lab.project_id in lab_text() and lab.cluster_name in lab_text()


def test_project_and_cluster_have_no_default():
    with pytest.raises(TypeError, match="project_id"):
        GkeConfig()  # type: ignore[call-arg]
    example = GkeConfig.example()
    assert (example.project_id, example.cluster_name) == (EXAMPLE_PROJECT_ID, EXAMPLE_CLUSTER_NAME)
    assert example.project_id.startswith("my-") and example.cluster_name.startswith("my-")


def test_shell_join_quotes_all_but_substitutions(tmp_path):
    argv = ["echo", tmp_path / "a b", "it's", "$HOME", ShellSubstitution("$(printf x)")]
    line = shell_join(argv)
    assert line == shlex.join(str(a) for a in argv[:4]) + ' "$(printf x)"'
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, check=True)
    assert done.stdout == f"{tmp_path / 'a b'} it's $HOME x\n"
