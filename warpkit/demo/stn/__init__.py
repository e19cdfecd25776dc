"""The spatial-transformer experiment of Jaderberg et al. (2015), Table 1, on real MNIST digits.

``data`` loads the digits, ``distortions`` makes R, RTS, P, E and TC with warpkit, ``models`` builds the
CNN and the ST-CNNs, ``training`` trains one model, ``report`` writes the table and figure, and
``experiment`` runs them all (``run_stn_demo``, behind ``warpkit demo stn``).
"""

from .data import load_digits, stratified_split
from .distortions import CANVAS_SIZE, DISTORTIONS, distort
from .experiment import PRESETS, StnDemoResult, run_stn_demo
from .models import MODELS, build_model

__all__ = [
    "CANVAS_SIZE",
    "DISTORTIONS",
    "MODELS",
    "PRESETS",
    "StnDemoResult",
    "build_model",
    "distort",
    "load_digits",
    "run_stn_demo",
    "stratified_split",
]
