"""`python -m training.device_train`: train several runs side by side on a device machine.

The code: training/scripts/device_train.py.
"""
from training.scripts.device_train import main

if __name__ == "__main__":
    raise SystemExit(main())
