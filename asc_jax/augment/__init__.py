"""On-device data augmentation for log-mel batches [B, F, T], run inside the jitted train step.

`chain.augment_batch` applies the augmentations switched on in `config.augment`; each module
here holds one augmentation as a pure function of an explicit PRNG key.
"""
