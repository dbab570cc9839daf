"""`python -m training.decontaminate`: find and exclude evaluation clips in the corpus.

The code: training/corpus/decontaminate.py.
"""
from training.corpus.decontaminate import main

if __name__ == "__main__":
    raise SystemExit(main())
