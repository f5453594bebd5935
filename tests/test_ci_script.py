"""``.ci/run`` stops at once, in one line naming the package, when the system's package manager cannot
install what the tests need, and leaves no environment behind."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from conftest import REPO

NOT_INSTALLED = "#!/bin/sh\nexit 1\n"
UNREACHABLE = "#!/bin/sh\necho 'E: Unable to locate package chromium' >&2\nexit 100\n"


def test_an_unreachable_package_manager_stops_ci_in_one_line(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "run", checkout / ".ci" / "run")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for name, script in (("dpkg-query", NOT_INSTALLED), ("apt-get", UNREACHABLE)):
        (fake_bin / name).write_text(script)
        (fake_bin / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", str(checkout / ".ci" / "run")], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(".ci/run: cannot install chromium with apt-get")
    assert not (checkout / ".venv").exists()
