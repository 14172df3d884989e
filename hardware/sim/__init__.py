"""The virtual board: twins of the panel parts, the patch player, the panel view and
window, and models of the chips (ADS1x15, SSD1306/SH1106, Jetson GPIO) that let the
real drivers run on a machine without the hardware."""
