"""State space models, from the theory up (issue #11):

    hippo.py         HiPPO matrices (legs, legt, lagt, fout), their rank correction and the
                     diagonal part of the normal matrix (nplr), in float64 numpy
    s4d.py           S4D: diagonal SSM layer run as an FFT convolution, with a recurrent step()
    s4d_lm.py        S4DLM: a language model of S4D layers and MLPs (the time-invariant baseline)
    mamba.py         the Mamba block (selective scan) and MambaLM, with a constant-size cache for
                     generation, and the adapter of transformers' MambaForCausalLM folders

They run on tinyml's autograd; the FFT is tinyml.fft and the selective scan tinyml.ops.selective_scan.
A and dt (S4D) and A_log and D (Mamba) declare `optim_hints` (no weight decay, a capped learning
rate), which tinyml.optim.param_groups.param_groups turns into the Trainer's AdamW groups.
"""
from .hippo import MEASURES, hippo, normal_part, nplr, rank_correction
from .mamba import Mamba, MambaCache, MambaConfig, MambaLM
from .s4d import S4D, S4DKernel
from .s4d_lm import S4DLM, S4DLMConfig

__all__ = ["MEASURES", "Mamba", "MambaCache", "MambaConfig", "MambaLM", "S4D", "S4DKernel", "S4DLM",
           "S4DLMConfig", "hippo",
           "normal_part", "nplr", "rank_correction"]
