"""Device side of the models: bundle reader and inference engines. Never imports torch."""
