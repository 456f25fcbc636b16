"""Device translation: parallel pairs (`pairs`), the translator's training loop and report
(`fit`), and its workdir (`store`). The classifier-side augmentation is asc_jax.augment.translation.
"""
