"""engagelab.channels."""
