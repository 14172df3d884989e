"""`make deploy HOST=...`: the checkout travels over ssh and install.sh runs there.

ssh is the boundary to a machine this one lacks: a stand-in `ssh` runs the remote
commands in a folder of its own (the 'host'), with install.sh in --dry-run since the
test may not create users or units here."""
import os
import stat
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FAKE_SSH = """#!/bin/sh
# ssh [-t] HOST COMMAND: run COMMAND in $FAKE_HOST_HOME; install.sh only rehearses.
[ "$1" = "-t" ] && shift
echo "$1" >> "$FAKE_HOST_HOME/hosts-seen"
shift
cmd=$(printf '%s' "$*" | sed -e 's/^sudo //' -e 's/install.sh/install.sh --dry-run/')
cd "$FAKE_HOST_HOME" && sh -c "$cmd"
"""


def _fake_ssh(tmp_path):
    home = tmp_path / "host"
    home.mkdir()
    ssh = tmp_path / "ssh"
    ssh.write_text(FAKE_SSH)
    ssh.chmod(ssh.stat().st_mode | stat.S_IEXEC)
    return home, dict(os.environ, SSH=str(ssh), FAKE_HOST_HOME=str(home))


def test_deploy_copies_the_checkout_and_runs_the_installer(tmp_path):
    home, env = _fake_ssh(tmp_path)
    result = subprocess.run(["make", "-s", "deploy", "HOST=player@jetson.local"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    src = home / "neurorave-src"
    for path in ("setup.py", "firmware/daemon.py", "systemd/neurorave.service",
                 "hardware/boards/jetson-nano.toml"):
        assert (src / path).is_file(), path
    assert not (src / ".venv").exists() and not (src / ".git").exists()
    assert (home / "hosts-seen").read_text().split() == ["player@jetson.local"] * 2
    out = result.stdout
    assert "useradd" in out and "systemctl enable --now neurorave.service" in out
    assert "pip install" in out and "/etc/systemd/system/neurorave.service" in out


def test_deploy_without_a_host_says_how(tmp_path):
    result = subprocess.run(["make", "-s", "deploy"], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "HOST=" in result.stderr and len(result.stderr.strip().splitlines()) <= 2
