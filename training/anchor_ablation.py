"""`python -m training.anchor_ablation`: which parts of the MFCC anchor carry a set.

The code: training/scripts/anchor_ablation.py.
"""
from training.scripts.anchor_ablation import main

if __name__ == "__main__":
    raise SystemExit(main())
