"""Every command finds the platform from any directory: the default data dir is one per user (per
host as root), not `./.coherex` of wherever the command runs; COHEREX_DATA_DIR still overrides it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def data_dir(cwd: Path, **env: str) -> Path:
    base = {k: v for k, v in os.environ.items() if k != "COHEREX_DATA_DIR"}
    out = subprocess.run(
        [sys.executable, "-c", "from coherex.settings import get_settings; print(get_settings().data_path)"],
        cwd=cwd,
        env={**base, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def test_the_default_data_dir_is_the_same_from_any_directory(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    here, there = data_dir(tmp_path / "a"), data_dir(tmp_path / "b")
    assert here == there == data_dir(ROOT)
    assert tmp_path not in here.parents and ROOT not in here.parents
    if os.geteuid() == 0:  # pgserver makes the parents world-traversable: never under /root
        assert here == Path("/var/lib/coherex")
    else:
        assert here.name == "coherex" and Path.home() in here.parents


def test_coherex_data_dir_overrides_it(tmp_path):
    assert data_dir(tmp_path, COHEREX_DATA_DIR=str(tmp_path / "mine")) == tmp_path / "mine"
