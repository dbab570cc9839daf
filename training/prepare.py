"""`python -m training.prepare`: corpus -> training patches.

The code: training/corpus/prepare.py.
"""
from training.corpus.prepare import main

if __name__ == "__main__":
    raise SystemExit(main())
