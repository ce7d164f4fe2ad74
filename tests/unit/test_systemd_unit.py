"""The systemd unit `kondge server unit` writes: started at boot, the
supervisor restarted when it dies, the parts left serving meanwhile."""

import shutil
import subprocess

from kondge_billing import config
from kondge_billing.operations.supervisor import systemd_unit

HOME = config.PROJECT_HOME


def test_the_unit_restarts_the_supervisor_and_leaves_the_parts_serving(tmp_path):
    unit = systemd_unit(config.load({"KONDGE_VAR": str(tmp_path / "var")}))
    lines = unit.splitlines()
    for needed in ("Restart=on-failure", "KillMode=process", "Type=simple",
                   f"ExecStart={HOME}/.venv/bin/kondge server run",
                   f"Environment=KONDGE_VAR={tmp_path}/var", "WantedBy=multi-user.target",
                   "EnvironmentFile=-/etc/default/kondge"):
        assert needed in lines, needed


def test_systemd_reads_the_unit_without_a_complaint(tmp_path):
    path = tmp_path / "kondge.service"
    path.write_text(systemd_unit(config.load({})))
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (package systemd) is part of every Debian system"
    result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True,
                            timeout=60)
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if str(path) in line]
    assert result.returncode == 0 and complaints == [], result.stdout + result.stderr
