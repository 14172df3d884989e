"""Exporting a training run as a model bundle (`neurorave export`, issue 5).

The bundle format is documented in `neurorave.models.runtime.bundle`. Here: the
export wrappers that bake attribute normalisation and the latent PCA into the graphs
(`wrappers.py`), the PCA fit on the training set (`pca.py`), tracing one streaming
step to a stateless ONNX opset-13 graph (`onnx_step.py`), and the command with the
RAVE-v1-sized reference decoder that `neurorave bench` compares against
(`command.py`, `reference.py`).
"""
