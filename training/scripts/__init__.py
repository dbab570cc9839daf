"""One-off experiments (anchor_ablation, benchmark_train, benchmark_decontaminate) and device logistics
(pack, device_train), each run through its thin entry point training/NAME.py."""
