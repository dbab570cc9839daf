"""`python -m training.zeroshot`: zero-shot tagging of a labelled set.

The code: training/evaluation/zeroshot.py.
"""
from training.evaluation.zeroshot import main

if __name__ == "__main__":
    raise SystemExit(main())
