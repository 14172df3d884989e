"""The systemd unit and install script: systemd's own checks, the hardening score."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIT = os.path.join(ROOT, "systemd", "neurorave.service")
INSTALL = os.path.join(ROOT, "systemd", "install.sh")
# Measured with systemd 252 (Debian 12): 0.8 "SAFE". The panel needs devices, real-time
# scheduling and supplementary groups, which is what keeps it above 0.
EXPOSURE_LIMIT = 1.0


def _analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is missing (make test installs the systemd package)")
    return path


def _directives() -> Dict[str, List[str]]:
    found: Dict[str, List[str]] = {}
    with open(UNIT) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")) and "=" in line:
                key, value = line.split("=", 1)
                found.setdefault(key, []).append(value)
    return found


def test_unit_has_what_an_appliance_needs():
    d = _directives()
    assert d["Type"] == ["notify"]
    assert int(d["WatchdogSec"][0]) >= 5
    assert d["Restart"] == ["on-failure"]
    assert d["User"] == ["neurorave"]
    assert set(d["SupplementaryGroups"][0].split()) == {"gpio", "i2c", "audio"}
    assert d["LimitMEMLOCK"] == ["infinity"] and int(d["LimitRTPRIO"][0]) > 0
    assert d["StateDirectory"] == ["neurorave"]
    assert d["Environment"].count("NEURORAVE_STATE_DIR=/var/lib/neurorave") == 1
    # Real-time scheduling must stay possible: these would forbid it.
    assert "RestrictRealtime" not in d and "CPUSchedulingPolicy" not in d


def test_systemd_verify_accepts_the_unit(tmp_path):
    # verify also checks that ExecStart exists: point it at this checkout's command.
    command = os.path.join(os.path.dirname(sys.executable), "neurorave")
    assert os.access(command, os.X_OK)
    with open(UNIT) as f:
        text = f.read().replace("/opt/neurorave/venv/bin/neurorave", command)
    unit = tmp_path / "neurorave.service"
    unit.write_text(text)
    out = subprocess.run([_analyze(), "verify", str(unit)], capture_output=True, text=True,
                         timeout=60, cwd=str(tmp_path))
    complaints = [line for line in (out.stdout + out.stderr).splitlines()
                  if "neurorave.service" in line]
    assert out.returncode == 0 and complaints == [], out.stdout + out.stderr


def test_verify_catches_a_broken_unit(tmp_path):
    # The check above can fail: a misspelt directive is reported.
    with open(UNIT) as f:
        text = f.read().replace("WatchdogSec=", "WatchdogSecs=")
    unit = tmp_path / "neurorave.service"
    unit.write_text(text)
    out = subprocess.run([_analyze(), "verify", str(unit)], capture_output=True, text=True,
                         timeout=60, cwd=str(tmp_path))
    assert "WatchdogSecs" in out.stdout + out.stderr


def _exposure(unit: str) -> float:
    out = subprocess.run([_analyze(), "security", "--offline=true", "--no-pager", unit],
                         capture_output=True, text=True, timeout=60, cwd=os.path.dirname(unit))
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out.stdout)
    assert match, out.stdout[-2000:] + out.stderr[-2000:]
    return float(match.group(1))


def test_hardening_score_is_low(tmp_path):
    score = _exposure(UNIT)
    assert score <= EXPOSURE_LIMIT, f"exposure {score} > {EXPOSURE_LIMIT}"
    # The measure can fail: the same unit without its hardening scores far worse.
    with open(UNIT) as f:
        bare = "".join(line for line in f
                       if not line.startswith(("Protect", "Private", "Restrict", "System",
                                               "Capability", "NoNew", "Device")))
    bare_unit = tmp_path / "neurorave.service"
    bare_unit.write_text(bare)
    assert _exposure(str(bare_unit)) > score + 3


def test_install_script_is_valid_shell_and_does_every_step():
    assert subprocess.run(["sh", "-n", INSTALL]).returncode == 0
    env = dict(os.environ, PYTHON=sys.executable)
    out = subprocess.run([INSTALL, "--dry-run", "--no-start"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    steps = out.stdout
    for expected in ("usermod -a -G gpio,i2c,audio neurorave", "-m venv /opt/neurorave/venv",
                     "pip install -q " + ROOT + "[jetson]",
                     "/etc/systemd/system/neurorave.service",
                     "/etc/udev/rules.d/99-neurorave.rules", "systemctl daemon-reload",
                     "systemctl enable neurorave.service",
                     "ensure-apt-packages.sh libportaudio2 libsndfile1",
                     "ln -sf /opt/neurorave/venv/bin/neurorave /usr/local/bin/neurorave"):
        assert expected in steps, expected


def test_install_refreshes_only_the_bundled_models_nobody_changed(tmp_path):
    """A re-install brings a newer bundled model where the module holds the copy an
    earlier install put there; a player's own bundle, or one changed by hand, stays."""
    models = tmp_path / "models"

    def installed(name, text, marked_as):
        folder = models / name
        folder.mkdir(parents=True)
        (folder / "model.json").write_text(text)
        if marked_as is not None:
            digest = hashlib.sha256(marked_as.encode()).hexdigest()
            (folder / ".bundled").write_text(digest + "\n")

    installed("gm-notes", "an older gm-notes", marked_as="an older gm-notes")  # stale copy
    installed("gm-drums", "drums, edited", marked_as="drums as installed")  # changed by hand
    installed("mine", "a player's model", marked_as=None)
    env = dict(os.environ, PYTHON=sys.executable, NEURORAVE_INSTALL_STATE=str(tmp_path))
    out = subprocess.run([INSTALL, "--dry-run", "--no-start"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    steps = out.stdout
    assert f"rm -rf {models}/gm-notes" in steps
    assert f"cp -r {ROOT}/models/pretrained/gm-notes/ {models}/gm-notes" in steps
    assert f"rm -rf {models}/gm-drums" not in steps and f"{models}/mine " not in steps
    assert f"kept {models}/gm-drums" in steps         # and it says so
    (models / "gm-notes" / "model.json").write_text(
        (Path(ROOT) / "models" / "pretrained" / "gm-notes" / "model.json").read_text())
    (models / "gm-notes" / ".bundled").write_text(hashlib.sha256(
        (models / "gm-notes" / "model.json").read_bytes()).hexdigest() + "\n")
    again = subprocess.run([INSTALL, "--dry-run", "--no-start"], capture_output=True,
                           text=True, env=env, timeout=60).stdout
    assert f"{models}/gm-notes" not in again          # already the bundled one


def test_install_script_refuses_an_old_python():
    env = dict(os.environ, PYTHON="false")
    out = subprocess.run([INSTALL, "--dry-run"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 1 and "older than 3.8" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    bad = subprocess.run([INSTALL, "--frobnicate"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown option" in bad.stderr
