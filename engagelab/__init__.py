"""engagelab: design, run and analyse messaging campaigns from Jupyter."""
__version__ = "0.1.0"
