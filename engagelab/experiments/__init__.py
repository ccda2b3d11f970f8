"""engagelab.experiments."""
