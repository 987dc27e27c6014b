"""Shared test settings: quiet TensorFlow, headless matplotlib, few threads (CI has 2 cores),
and the end-of-session check that no test left a process, shared-memory region or temporary
folder (:mod:`support.leaks`)."""

import os
import tempfile

import pytest
from support.leaks import LeakWatch

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "2")

# Started before anything else makes a temporary file or a process: the session's own
# temporary folder and process mark (support/leaks.py).
_LEAKS = LeakWatch().start()

# `cvlab infer` without -u reads the URL a running `cvlab triton serve` recorded: tests never see
# a developer's own server (tests that exercise the record set CVLAB_SERVE_FILE themselves).
os.environ.setdefault(
    "CVLAB_SERVE_FILE", os.path.join(tempfile.mkdtemp(prefix="cvlab-test-serve-"), "serve.json")
)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session when a test left a process, a shared-memory region or a temporary
    folder (each listed; all of them are removed now)."""
    problems = _LEAKS.finish()
    if not problems:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["tests left these behind (now removed):", *(f"  {p}" for p in problems)]
    if reporter is not None:
        reporter.section("leaks", sep="=", red=True, bold=True)
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
