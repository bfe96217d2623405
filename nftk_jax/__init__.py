"""NFT-K in JAX: layerwise neural tangent kernels and learned per-class mixtures."""
