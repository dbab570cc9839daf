"""`python -m training.tag_head --weights weights --data prepared`: fit and write a checkpoint's tag head.

The code: training/trainer/tag_head.py.
"""
from training.trainer.tag_head import main

if __name__ == "__main__":
    raise SystemExit(main())
