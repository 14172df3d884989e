"""What counts as heard: one level for the device and the learning side alike."""

# A frame whose rms is below this (-60 dBFS) is not heard: the evaluation, the control
# loss and the prior's phrase starts read its spectral descriptors as the convention of
# silence, not as a timbre; the generation check counts it as a gap; and a phrase the
# prior starts on the module starts above it.
AUDIBLE_RMS = 1e-3
