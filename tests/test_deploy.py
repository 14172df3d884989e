"""`make deploy HOST=...`: the checkout travels over ssh and install.sh runs there.

ssh is the boundary to a machine this one lacks: a stand-in `ssh` runs the remote
commands in a folder of its own (the 'host'), with install.sh in --dry-run since the
test may not create users or units here."""
import os
import stat
import subprocess

import pytest

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


WHEEL = "onnxruntime_gpu-1.11.0-cp38-cp38-linux_aarch64.whl"


def test_deploy_takes_the_jetpack_onnxruntime_wheel_along(tmp_path):
    """`make deploy ORT_WHEEL=...`: the wheel travels with its name, install.sh puts it in
    place of PyPI's CPU-only onnxruntime; on a Jetson the venv reaches the system's
    TensorRT and gets a GPU memory library; `neurorave doctor` reports at the end."""
    home, env = _fake_ssh(tmp_path)
    wheel = tmp_path / WHEEL
    wheel.write_bytes(b"PK\x03\x04 not really a wheel")
    tegra = tmp_path / "nv_tegra_release"
    tegra.write_text("# R32 (release), REVISION: 7.1\n")
    env["NEURORAVE_TEGRA_RELEASE"] = str(tegra)
    result = subprocess.run(["make", "-s", "deploy", "HOST=player@jetson.local",
                             f"ORT_WHEEL={wheel}"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    copied = home / "neurorave-src" / "wheels" / WHEEL
    assert copied.read_bytes() == wheel.read_bytes()
    out = result.stdout
    assert "pip uninstall -q -y onnxruntime" in out
    assert f"pip install -q neurorave-src/wheels/{WHEEL}" in out
    assert out.index("uninstall -q -y onnxruntime") < out.index(f"wheels/{WHEEL}")
    assert "venv --system-site-packages /opt/neurorave/venv" in out
    assert "pip install -q cuda-python" in out or "pip install -q pycuda" in out
    assert "/opt/neurorave/venv/bin/neurorave doctor" in out


def _install(*args, env=None):
    return subprocess.run(["sh", os.path.join(REPO, "systemd", "install.sh"), "--dry-run",
                           "--no-start", *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **(env or {})))


def test_install_off_a_jetson_keeps_the_venv_to_itself(tmp_path):
    result = _install(env={"NEURORAVE_TEGRA_RELEASE": str(tmp_path / "none")})
    assert result.returncode == 0, result.stderr
    assert "--system-site-packages" not in result.stdout
    assert "uninstall" not in result.stdout and "cuda-python" not in result.stdout
    forced = _install("--system-trt", "--gpu-buffers", "pycuda",
                      "--ort-wheel", "https://example.org/" + WHEEL,
                      env={"NEURORAVE_TEGRA_RELEASE": str(tmp_path / "none")})
    assert forced.returncode == 0, forced.stderr
    assert "--system-site-packages" in forced.stdout and "pip install -q pycuda" in forced.stdout
    assert f"pip install -q https://example.org/{WHEEL}" in forced.stdout


@pytest.mark.parametrize("args, words", [
    (["--ort-wheel", "onnxruntime-gpu"], "wants a .whl"),
    (["--ort-wheel"], "needs a path or URL"),
    (["--gpu-buffers", "ctypes"], "cuda-python, pycuda or none"),
])
def test_install_refuses_a_bad_gpu_option_in_one_line(args, words):
    result = _install(*args)
    assert result.returncode == 2
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_deploy_refuses_a_wheel_that_is_not_there(tmp_path):
    _home, env = _fake_ssh(tmp_path)
    result = subprocess.run([os.path.join(REPO, "tools", "deploy.sh"), "player@jetson.local",
                             "--ort-wheel", str(tmp_path / WHEEL)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "no such file" in result.stderr
