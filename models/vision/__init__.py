"""Vision backbones. Empty so far: issue #13 brings CNN backbones and necks and a ViT (with shifted
patch tokenisation and locality self-attention) here."""
