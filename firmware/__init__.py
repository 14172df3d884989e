"""The instrument: scheduler, controls, voice, audio output, menu, settings, CLI."""
