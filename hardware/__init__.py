"""Drivers for the panel's parts (ADC, gates, encoder, LED, OLED) and their virtual twins."""
