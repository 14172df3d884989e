"""The bottom of the import graph: conventions every layer shares (hardware, models and
firmware may import this; it imports none of them)."""
