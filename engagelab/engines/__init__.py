"""engagelab.engines."""
