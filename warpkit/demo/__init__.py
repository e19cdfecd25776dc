"""Demo experiments (need the ``demo`` extra: scikit-learn, matplotlib, tqdm)."""

from .stn import run_stn_demo

__all__ = ["run_stn_demo"]
