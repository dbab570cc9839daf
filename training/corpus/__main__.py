"""`python -m training.corpus`: build the corpus.

The code: training/corpus/build.py.
"""
from training.corpus.build import main

if __name__ == "__main__":  # not in worker processes that re-import the main module (spawn)
    raise SystemExit(main())
