"""Quiet TensorFlow: its start-up lines are dropped, in Python and in `cvlab` commands; any
other line still shows."""

import os
import subprocess
import sys

from cvlab.cli import VERBS


def test_quiet_tensorflow_drops_only_the_known_start_up_lines() -> None:
    """A real TensorFlow import in a fresh Python: its pre-initialisation lines (absl and
    oneDNN) are dropped, anything else written to stderr meanwhile still shows."""
    code = (
        "import os\n"
        "from cvlab import quiet\n"
        "with quiet._stderr_filtered():\n"
        "    os.write(2, b'a real problem\\n')\n"
        "quiet.quiet_tensorflow()\n"
        "import tensorflow as tf\n"
        "print(tf.constant(2).numpy() * 21)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"
    assert "a real problem" in done.stderr
    assert "absl::InitializeLog" not in done.stderr and "oneDNN" not in done.stderr


def test_commands_that_load_tensorflow_print_no_start_up_lines(tmp_path) -> None:
    """A real `cvlab export demo-model` (Keras -> ONNX) in a fresh process: its output is the
    command's own lines, without TensorFlow's pre-initialisation lines."""
    assert {v.command for v in VERBS if v.tensorflow} >= {"export demo-model", "train run"}
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-m", "cvlab", "export", "demo-model", "--output", str(tmp_path),
         "--input-size", "64x32", "--target", "onnxruntime_onnx"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    assert "absl::InitializeLog" not in done.stderr and "oneDNN" not in done.stderr, done.stderr
    assert "I0000" not in done.stderr, done.stderr
