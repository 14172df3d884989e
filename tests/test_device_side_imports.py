"""The daemon's side of the package must never pull in torch (DESIGN.md rule 4)."""
import json
import subprocess
import sys

# The device's packages, and the one module of models/ outside runtime that it imports.
DEVICE_PACKAGES = ["neurorave.firmware", "neurorave.hardware", "neurorave.models.runtime",
                   "neurorave.models.audibility"]

PROBE = r"""
import importlib, json, pkgutil, sys
imported = []
for name in PACKAGES:
    package = importlib.import_module(name)
    imported.append(name)
    for info in pkgutil.walk_packages(getattr(package, "__path__", []), prefix=name + "."):
        importlib.import_module(info.name)
        imported.append(info.name)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "pytorch_lightning",
                                                               "lightning", "librosa"))
print(json.dumps({"imported": imported, "heavy": heavy}))
"""


def _probe():
    code = f"PACKAGES = {DEVICE_PACKAGES!r}\n{PROBE}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_device_side_imports_no_torch():
    result = _probe()
    # The walk really reached the code (the CLI is part of the daemon's side).
    assert "neurorave.firmware.cli" in result["imported"]
    assert result["heavy"] == [], f"device side imports learning-side packages: {result['heavy']}"


def test_probe_detects_torch_when_imported():
    # The check itself must be able to fail: importing torch shows up in sys.modules.
    code = "import sys, torch; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
