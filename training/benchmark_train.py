"""`python -m training.benchmark_train`: training throughput.

The code: training/scripts/benchmark_train.py.
"""
from training.scripts.benchmark_train import main

if __name__ == "__main__":
    raise SystemExit(main())
