"""`python -m training.pack`: prepared patches <-> 8-bit xz parts for a device machine.

The code: training/scripts/pack.py.
"""
from training.scripts.pack import main

if __name__ == "__main__":
    raise SystemExit(main())
