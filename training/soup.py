"""`python -m training.soup`: average fine-tunes of one start into one checkpoint.

The code: training/trainer/soup.py.
"""
from training.trainer.soup import main

if __name__ == "__main__":
    raise SystemExit(main())
