"""Demo experiments (need the ``demo`` extra: mlxtend, scikit-learn, matplotlib, tqdm)."""

__all__ = ["run_stn_demo"]


def __getattr__(name: str):
    # the experiment imports matplotlib and friends only when it is asked for
    if name == "run_stn_demo":
        from .stn import run_stn_demo

        return run_stn_demo
    raise AttributeError(name)
