"""The torch-native backend against torch's ``affine_grid`` + ``grid_sample``: ``python benchmarks/backends.py
[--device cpu|cuda]``, the same as ``warpkit bench --device DEVICE`` (the code lives in
``warpkit/cli/_bench_backends.py`` so that the installed command needs no checkout)."""

import sys

from warpkit.cli._bench_backends import main

if __name__ == "__main__":
    sys.exit(main())
