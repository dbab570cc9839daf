"""`python -m training.paired`: paired differences between extractors of one evaluation.

The code: training/evaluation/paired.py.
"""
from training.evaluation.paired import main

if __name__ == "__main__":
    raise SystemExit(main())
