"""engagelab.campaigns."""
