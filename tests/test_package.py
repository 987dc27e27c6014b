"""`import cvlab` caps oneDNN at AVX2 (TF 2.21's AVX-512 kernels abort training on some CPUs)."""

from __future__ import annotations

import os
import subprocess
import sys


def _isa_after_import(env: dict[str, str]) -> str:
    code = "import os, cvlab; print(os.environ.get('ONEDNN_MAX_CPU_ISA'))"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_import_sets_avx2_unless_the_user_chose():
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    assert _isa_after_import(env) == "AVX2"
    assert _isa_after_import({**env, "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}) == "AVX512_CORE"
