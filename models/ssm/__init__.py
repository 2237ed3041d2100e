"""State space models. Empty so far: issue #11 brings HiPPO, S4/S4D and Mamba here, each with its
Hugging Face adapter registered with tinyml.models.hf (the selective-scan kernel they run on is
already in tinyml.ops)."""
