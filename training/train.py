"""`python -m training.train`: train a network on prepared patches.

The code: training/trainer/loop.py.
"""
from training.trainer.loop import main

if __name__ == "__main__":
    raise SystemExit(main())
