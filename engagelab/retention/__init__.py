"""engagelab.retention."""
