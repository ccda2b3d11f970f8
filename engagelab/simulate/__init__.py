"""engagelab.simulate."""
