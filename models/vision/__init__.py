"""Vision backbones (issue #13): CNN backbones and necks, and a ViT (with shifted patch tokenisation and
locality self-attention).

    csp.py    CSP CNN blocks (ConvBNAct, Bottleneck, C2f, SPPF) and CSPBackbone (strides 2..32; tiny/small)
    neck.py   PAN: FPN top-down + PAN bottom-up neck over any run of levels, e.g. P2-P4 for tiny objects
    vit.py    ViT classifier; spt=True / lsa=True switch on Shifted Patch Tokenization and Locality
              Self-Attention (Lee, Lee & Song 2021, ViT for small datasets)
"""
from .csp import SPPF, Bottleneck, C2f, ConvBNAct, CSPBackbone, fuse_modules  # noqa: F401
from .neck import PAN  # noqa: F401
from .vit import ViT  # noqa: F401  (vit.py: ViT with Shifted Patch Tokenization and Locality Self-Attention)
