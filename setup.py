"""NeuroRave: a neural synthesizer in Eurorack format.

The four code folders are mapped into one import namespace:
common/ -> neurorave.common (the bottom: conventions every layer shares),
hardware/ -> neurorave.hardware, models/ -> neurorave.models,
firmware/ -> neurorave.firmware.
"""
from pathlib import Path

from setuptools import find_packages, setup

CODE_FOLDERS = ("common", "hardware", "models", "firmware")

PY38 = 'python_version < "3.9"'
PY39_PLUS = 'python_version >= "3.9"'
PY310_PLUS = 'python_version >= "3.10"'

# What the daemon needs on the module, nothing more. Python 3.8 (JetPack 4.6 and 5)
# is pinned to the last releases that still ship wheels for it.
BASE = [
    f"numpy>=1.19,<1.25; {PY38}",
    f"numpy>=1.22; {PY39_PLUS}",
    'onnxruntime>=1.10,<1.20; python_version < "3.10"',
    f"onnxruntime>=1.17; {PY310_PLUS}",
    "sounddevice>=0.4.6",
    "soundfile>=0.12",
    f"soxr>=0.3.7,<0.4; {PY38}",
    f"soxr>=0.3.7; {PY39_PLUS}",
    "smbus2>=0.4",
    "luma.oled>=3.12",
    f"pillow>=9,<11; {PY38}",
    f"pillow>=9; {PY39_PLUS}",
    "sdnotify>=0.3.2",
    'tomli>=1.2; python_version < "3.11"',
]

EXTRAS = {
    # The virtual panel on a laptop.
    "sim": ["luma.emulator>=1.5", "pygame>=2.1"],
    # The learning side: workstation or GPU machine only, never the module.
    "train": [
        "torch>=2.1",
        "pytorch-lightning>=2.1",
        "tensorboard>=2.14",
        "librosa>=0.10",
        "onnx>=1.15",
        "onnxscript>=0.1",
        "tqdm>=4.66",
        "matplotlib>=3.7",
        "scipy>=1.10",
    ],
    "gpu": ["onnxruntime-gpu>=1.10"],
    "jetson": ["Jetson.GPIO>=2.0"],
    "dev": ["pytest>=7.4", "hypothesis>=6.80", "ruff>=0.5", "mypy>=1.8", "vermin>=1.6",
            "selenium>=4.10"],
}

setup(
    name="neurorave",
    version="0.1.0",
    description="NeuroRave: a streaming F-RAVE neural synthesizer in Eurorack format",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.8",
    package_dir={f"neurorave.{top}": top for top in CODE_FOLDERS},
    packages=[
        f"neurorave.{top}{'.' + sub if sub else ''}"
        for top in CODE_FOLDERS
        for sub in [""] + find_packages(top)
    ],
    package_data={
        "neurorave.hardware": ["boards/*.toml"],
        "neurorave.models": ["configs/*.toml", "prior/configs/*.toml", "pretrained/*/*"],
    },
    install_requires=BASE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["neurorave = neurorave.firmware.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Multimedia :: Sound/Audio :: Sound Synthesis",
    ],
)
