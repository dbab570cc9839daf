"""`python -m training.export`: a training run -> a coala-embed checkpoint.

The code: training/trainer/export.py.
"""
from training.trainer.export import main

if __name__ == "__main__":
    raise SystemExit(main())
