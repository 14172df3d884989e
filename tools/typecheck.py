"""Run mypy over the device-side folders (and single modules) under their real import names.

The code folders are mapped into the `neurorave` namespace by setup.py, which mypy
cannot see through an editable install; a tree of symbolic links gives it the
`neurorave.<folder>` layout. A folder is checked with everything under it, a .py file
alone. Usage: python tools/typecheck.py firmware hardware models/runtime models/audibility.py
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREE = os.path.join(ROOT, "build", "typecheck")


def main(folders):
    package_root = os.path.join(TREE, "neurorave")
    os.makedirs(package_root, exist_ok=True)
    for top in ("common", "hardware", "models", "firmware"):
        link = os.path.join(package_root, top)
        if not os.path.islink(link):
            os.symlink(os.path.join(ROOT, top), link)
    packages = []
    for path in folders:
        name = path.strip("/")
        if name.endswith(".py"):
            name = name[:-3]
            if name.endswith("/__init__"):
                name = name[:-len("/__init__")]
            packages += ["-m", "neurorave." + name.replace("/", ".")]
        else:
            packages += ["-p", "neurorave." + name.replace("/", ".")]
    env = dict(os.environ, MYPYPATH=TREE)
    command = [sys.executable, "-m", "mypy", "--config-file", os.path.join(ROOT, "pyproject.toml")]
    return subprocess.call(command + packages, env=env, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
