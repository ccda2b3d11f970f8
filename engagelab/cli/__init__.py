"""The ``engagelab`` command line: one package, a module per command group.

``main`` builds the parser and imports only the module of the command it runs, so
``engagelab --help`` and light commands never pay for pandas, scipy or DuckDB.
"""

from engagelab.cli.app import main

__all__ = ["main"]
