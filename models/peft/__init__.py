"""Parameter-efficient fine-tuning on tinyml models with peft's API: LoRA on any nn.Linear (GPT, Llama,
BERT, Mamba, ...), the other methods on GPT, Llama and BERT blocks (SeqBn and SeqBnInv on Mamba too).

    tuner.py       target-module matching, the adapter-layer protocol, PeftModel / get_peft_model / inject
    lora.py        LoRA and rsLoRA on nn.Linear (LoraConfig, LoraLinear), with lora_function.py: one
                   autograd node for a frozen base + LoRA that keeps its input once, or recomputes it
    lora_xs.py     LoRA-XS: frozen SVD factors, a trainable r x r matrix (LoraXSConfig)
    bottleneck.py  SeqBn (Pfeiffer), DoubleSeqBn (Houlsby), SeqBnInv (NICE invertible adapter), by hooks
    ladder.py      Ladder Side-Tuning (LSTConfig), with ladder_prune.py: side blocks pruned from the backbone
                   by weight magnitude or by Fisher information (ladder_fisher.py)
    interop.py     load_adapter / save_adapter: peft's adapter folders (adapter_config.json + safetensors)

    from tinyml.models.peft import LoraConfig, get_peft_model
    model = get_peft_model(gpt, LoraConfig(r=8, lora_alpha=16, target_modules=["c_attn", "c_proj"]))
    model.print_trainable_parameters()
    merged = model.merge_and_unload()
"""
from .bottleneck import BottleneckLayer, DoubleSeqBnConfig, NICECoupling, SeqBnConfig, SeqBnInvConfig
from .interop import load_adapter, save_adapter
from .ladder import LadderSideLayer, LSTConfig
from .lora import LoraConfig, LoraLinear
from .lora_xs import LoraXSConfig, LoraXSLinear
from .tuner import AdapterLayer, PeftModel, get_peft_model, inject

__all__ = ["AdapterLayer", "BottleneckLayer", "DoubleSeqBnConfig", "LSTConfig", "LadderSideLayer",
           "LoraConfig", "LoraLinear", "LoraXSConfig", "LoraXSLinear", "NICECoupling", "PeftModel",
           "SeqBnConfig", "SeqBnInvConfig", "get_peft_model", "inject", "load_adapter", "save_adapter"]
