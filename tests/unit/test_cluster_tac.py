"""
The cluster in one process (L{pygmy.cluster}, C{pygmy.tac}) runs one front
end; a file of several front ends is refused in one line, and the one front
end's cluster is built as before.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pygmy.cluster import cluster_service
from pygmy.config import ConfigError, load
from tests.config_texts import CLUSTER, REPLICAS, frontends
from tests.fakes import SyncReactor, config_text

REPO = Path(__file__).resolve().parents[2]
SEVERAL = CLUSTER + frontends("1", "2") + "[coordinator]\netcd = http://127.0.0.1:2379\n" + REPLICAS


def test_several_front_ends_are_refused_in_one_line(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text(SEVERAL)
    with pytest.raises(ConfigError) as info:
        cluster_service(load(path, environ={}), SyncReactor())
    message = str(info.value)
    assert "\n" not in message
    assert "2 front ends ([frontend:1], [frontend:2])" in message and "pygmy-frontend --name" in message


def test_one_front_end_is_the_whole_cluster(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text(config_text(data_dir=str(tmp_path / "var")))
    top = cluster_service(load(path, environ={}), SyncReactor())
    names = [service.name for service in top]
    assert names == ["catalog:A", "catalog:B", "order:A", "order:B", "frontend"]


def test_the_tac_refuses_several_front_ends_without_a_traceback(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text(SEVERAL)
    twistd = str(Path(sys.executable).with_name("twistd"))
    done = subprocess.run(
        [twistd, "-n", "--pidfile=", "-y", str(REPO / "pygmy.tac")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PYGMY_CONFIG": str(path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert done.returncode != 0
    said = (done.stderr + done.stdout).strip().splitlines()
    assert "Traceback" not in done.stderr + done.stdout
    assert any(line.startswith("pygmy.tac: ") and "2 front ends" in line for line in said), said
