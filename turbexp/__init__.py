"""turbexp: machine-learning experiments on images of interstellar turbulence."""

from turbexp.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
