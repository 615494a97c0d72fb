"""pingjia's host tools: the collector."""
