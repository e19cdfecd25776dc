"""Benchmark warpkit's sampler against torch, kornia and OpenCV: ``python benchmarks/bench.py [--quick]``.

The same as ``warpkit bench``; the code lives in ``warpkit/cli/_bench.py`` so that the installed command
needs no checkout. Run it on a quiet machine: the numbers in README come from it.
"""

import sys

from warpkit.cli._bench import main

if __name__ == "__main__":
    sys.exit(main())
