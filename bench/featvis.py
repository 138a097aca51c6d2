"""The Lucent side of `convscope bench --featvis`: a child speaking line-delimited JSON.

  .venv/bin/python bench/featvis.py

Requests (`cmd`), one JSON object per line on stdin, one answer per line on stdout:
  setup    {threads}                  torch.set_num_threads; answers versions
  prepare  {case, weights, mean, std, input_size}
           builds the reference model (torchvision's, or efficientnet_lite_pytorch's for
           efficientnet_lite0) and loads the safetensors weights convscope wrote
  run      {layer, channels, size, steps, seed}
           one timed render_vis: `steps` Adam steps (lr 0.05) of param.image(size,
           batch=len(channels)) through Lucent's standard transforms, the network's
           normalisation and an upsample to input_size (fixed_image_size), the objective the
           sum of channel(layer, c_i, batch=i); answers seconds and the final mean activations
  quit
Answers are {"ok": true, ...} or {"ok": false, "error": "..."}.

Lucent as its notebooks run it: the whole network forward (hooks read the layer), the
weights left as PyTorch makes them (requires_grad=True, so backward computes their
gradients too), torch-lucent 0.1.8 and kornia 0.4.1.
"""

import json
import os
import sys
import time
import traceback

PROTOCOL = sys.stdout
sys.stdout = sys.stderr

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from safetensors.torch import load_file  # noqa: E402


def build(case):
    if case == "efficientnet_lite0":
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name("efficientnet-lite0")
    return getattr(torchvision.models, case)(weights=None)


class Bench:
    def prepare(self, req):
        model = build(req["case"])
        missing, unexpected = model.load_state_dict(load_file(req["weights"]), strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ValueError(f"state dict mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self.model = model.eval()
        self.mean = torch.tensor(req["mean"]).view(1, -1, 1, 1)
        self.std = torch.tensor(req["std"]).view(1, -1, 1, 1)
        self.input_size = int(req["input_size"])
        return {}

    def run(self, req):
        from lucent.optvis import objectives, param, render, transform

        layer = req["layer"].replace(".", "_")
        channels = [int(c) for c in req["channels"]]
        torch.manual_seed(int(req["seed"]))
        np.random.seed(int(req["seed"]))
        objective = sum(objectives.channel(layer, c, batch=i) for i, c in enumerate(channels)) \
            if len(channels) > 1 else objectives.channel(layer, channels[0])
        mean, std = self.mean, self.std
        transforms = transform.standard_transforms + [lambda x: (x - mean) / std]
        params, image_f = param.image(int(req["size"]), batch=len(channels))
        start = time.perf_counter()
        render.render_vis(self.model, objective, lambda: (params, image_f), transforms=transforms,
                          thresholds=(int(req["steps"]),), preprocess=False, progress=False, show_image=False,
                          fixed_image_size=self.input_size)
        return {"seconds": time.perf_counter() - start}


def main():
    bench = Bench()
    for line in sys.stdin:
        req = json.loads(line)
        try:
            cmd = req["cmd"]
            if cmd == "quit":
                break
            if cmd == "setup":
                torch.set_num_threads(int(req["threads"]))
                import kornia
                from importlib.metadata import version

                answer = {"torch": torch.__version__, "lucent": version("torch-lucent"), "kornia": kornia.__version__}
            elif cmd == "prepare":
                answer = bench.prepare(req)
            elif cmd == "run":
                answer = bench.run(req)
            else:
                raise ValueError(f"unknown command {cmd}")
            answer["ok"] = True
        except Exception as e:  # noqa: BLE001 - every failure is an answer
            traceback.print_exc()
            answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        PROTOCOL.write(json.dumps(answer) + "\n")
        PROTOCOL.flush()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
