"""engagelab.segments."""
