"""The library layer of training: prepared patches -> trained network -> coala-embed checkpoint (config,
data contract, augmentation, losses, network, optimiser, loop, export, soup). Imports nothing of corpus
building or evaluation; see training/__init__.py for the map."""
