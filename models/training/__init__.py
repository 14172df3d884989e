"""Training F-RAVE and C-RAVE models (`neurorave train`).

A run folder (`--out RUN`) holds everything the exporter (`neurorave export RUN`) needs:

    RUN/
      config.json          the fully resolved configuration (`models.config.load_config`
                           reads it back)
      stats.json           the attribute statistics used: {"hop", "sr", "source", "dataset",
                           "attributes": {name: {"min", "max", "mean", "std", "bins" (17
                           quantile edges), "frames"}}}; normalisation is
                           2 * (x - min) / (max - min) - 1, clipped to [-1, 1]
      dataset.json         the dataset folder trained on and its manifest (for fitting the
                           latent PCA on the train split)
      checkpoints/         Lightning checkpoints step-XXXXXXXX.ckpt (the last 3) and
                           last.ckpt, for --resume
      weights/             step-XXXXXXXX.pt and last.pt: the module's plain state_dict,
                           loads with torch.load(path, weights_only=True)
      logs/                TensorBoard event files (losses, latent discriminator accuracy,
                           validation audio and spectrograms)

`neurorave.models.training.run.load_run(RUN)` rebuilds the trained module from these.
"""
