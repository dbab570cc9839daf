"""`python -m training.evaluate`: score checkpoints with the paper's protocol.

The code: training/evaluation/run.py.
"""
from training.evaluation.run import main

if __name__ == "__main__":
    raise SystemExit(main())
