"""engagelab.jobs."""
