"""`python -m training.benchmark_decontaminate`: decontamination throughput.

The code: training/scripts/benchmark_decontaminate.py.
"""
from training.scripts.benchmark_decontaminate import main

if __name__ == "__main__":
    raise SystemExit(main())
