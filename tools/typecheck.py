"""Run mypy over the device-side folders under their real import names.

The code folders are mapped into the `neurorave` namespace by setup.py, which mypy
cannot see through an editable install; a tree of symbolic links gives it the
`neurorave.<folder>` layout. Usage: python tools/typecheck.py firmware hardware models/runtime
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREE = os.path.join(ROOT, "build", "typecheck")


def main(folders):
    package_root = os.path.join(TREE, "neurorave")
    os.makedirs(package_root, exist_ok=True)
    for top in ("hardware", "models", "firmware"):
        link = os.path.join(package_root, top)
        if not os.path.islink(link):
            os.symlink(os.path.join(ROOT, top), link)
    packages = []
    for folder in folders:
        packages += ["-p", "neurorave." + folder.strip("/").replace("/", ".")]
    env = dict(os.environ, MYPYPATH=TREE)
    command = [sys.executable, "-m", "mypy", "--config-file", os.path.join(ROOT, "pyproject.toml")]
    return subprocess.call(command + packages, env=env, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
