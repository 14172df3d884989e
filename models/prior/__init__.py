"""The joint prior: a causal model of latent frames and attribute values together.

net.py (the network and its sampling), data.py (sequences from an F-RAVE run and its
dataset), train.py (`neurorave train --config prior --source RUN`), export.py (the
stateless ONNX graph that goes into a bundle). The device side is
`neurorave.models.runtime.generator`.
"""
