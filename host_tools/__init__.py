"""pingjia host tools: the collector, the virtual device launcher and the technician's CLI."""
