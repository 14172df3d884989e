"""Evaluation of trained models (`neurorave evaluate`): reconstruction metrics, the paper's
control protocol, latent disentanglement, and a self-contained HTML report."""
