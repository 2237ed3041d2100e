"""tinyml.models: model families built on tinyml, one folder each, every model with its Hugging Face
adapter in its own file, registered with hf.py (the folder reader and writer).

    transformer/   GPT-2, Llama and BERT, their shared blocks, and generation with a KV cache
    ssm/           HiPPO, S4D and Mamba (MambaLM), with the MambaForCausalLM adapter
    peft/          LoRA, rsLoRA, LoRA-XS, bottleneck adapters (SeqBn, DoubleSeqBn, SeqBnInv), ladder
                   side-tuning, and peft adapter folders (load_adapter / save_adapter)
    detection/     Detector (YOLOv8-style, P2 level, task-aligned assigner, DFL) and CenterNet detectors,
                   box metrics (COCO AP, infrared Pd/Fa, IoU/nIoU) and SAHI slicing and merging,
                   MCLC point-label pseudo-masks and a small-target segmenter (U-Net); the
                   box ops, NMS and detection losses are ops (tinyml/ops/boxes.py, detection_loss.py)
    vision/        CNN backbone blocks (CSP, C2f, SPPF) and the FPN/PAN neck, and the ViT with
                   shifted patch tokenization and locality self-attention (see its docstring)

Installed as `tinyml.models` (setup.py's package_dir); code here imports `tinyml...`.

    from tinyml.models import GPT, GPTConfig, generate, from_pretrained
    model = GPT(GPTConfig(vocab_size=65))
    tokens = generate(model, [0], max_new_tokens=100, temperature=0.8, top_k=40)
    hf = from_pretrained("folder/with/config.json")   # GPT2LMHeadModel, LlamaForCausalLM, BertForMaskedLM
"""
from .hf import from_pretrained, save_pretrained
from .peft.interop import load_adapter, save_adapter
from .ssm import S4D, MambaConfig, MambaLM
from .transformer import (
    GPT,
    BertConfig,
    BertForMaskedLM,
    BertModel,
    GPTConfig,
    KVCache,
    Llama,
    LlamaConfig,
    generate,
    mask_tokens,
    sample_next,
)

__all__ = ["BertConfig", "BertForMaskedLM", "BertModel", "mask_tokens", "generate", "sample_next", "GPT",
           "GPTConfig", "from_pretrained", "save_pretrained", "KVCache", "Llama", "LlamaConfig",
           "MambaConfig", "MambaLM", "S4D", "load_adapter", "save_adapter"]
