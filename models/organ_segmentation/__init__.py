"""Per-organ light 2D Res-UNets (papers/multi-organ-resunet.txt): network, synthetic data, training."""
