"""Shared test settings: quiet TensorFlow, headless matplotlib, few threads (CI has 2 cores)."""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "2")

# `cvlab infer` without -u reads the URL a running `cvlab triton serve` recorded: tests never see
# a developer's own server (tests that exercise the record set CVLAB_SERVE_FILE themselves).
os.environ.setdefault(
    "CVLAB_SERVE_FILE", os.path.join(tempfile.mkdtemp(prefix="cvlab-test-serve-"), "serve.json")
)
