"""Parameter-efficient fine-tuning. Empty so far: issue #12 brings LoRA, rsLoRA, LoRA-XS, bottleneck
adapters and ladder side-tuning here, applied to the models of the other families."""
