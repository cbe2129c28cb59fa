"""bench/privacy_export.py runs, at a tiny size, and its checks pass: the streamed caller
export gives the same bytes as the export built whole, and its memory stays flat."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_caller_export_benchmark_passes_at_a_tiny_size():
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # TEST_DATABASE_URL
    done = subprocess.run(
        [sys.executable, "bench/privacy_export.py", "--small", "1000", "--calls", "3000"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    checks = re.findall(r"^  (PASS|FAIL)  (.*)$", done.stdout, re.M)
    assert [label for result, label in checks if result == "FAIL"] == [], done.stdout
    assert len(checks) == 8, done.stdout  # per format: 2 x the same bytes, RSS, flat peak
    assert re.search(r"json\s+3,000 streamed", done.stdout)
