"""pingjia's host tools: the sign."""
