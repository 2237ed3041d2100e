"""Object detection. Empty so far: issue #13 brings detection heads, label assigners, box coders,
post-processing and SAHI (sliced inference) here, on the backbones of tinyml.models.vision."""
