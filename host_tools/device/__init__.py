"""pingjia's host tools: the device."""
