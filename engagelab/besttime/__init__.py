"""engagelab.besttime."""
