"""The captum side of `convscope bench --attribution`: a child speaking line-delimited JSON.

  .venv/bin/python bench/attribution.py

Requests (`cmd`), one JSON object per line on stdin, one answer per line on stdout:
  setup    {threads}                  torch.set_num_threads; answers versions
  prepare  {case, weights, input, layer, target, steps, window, stride, batch}
           builds the reference model (torchvision's, or efficientnet_lite_pytorch's for
           efficientnet_lite0), loads the safetensors weights convscope wrote, reads the shared
           input; answers the logits and each method's map (flattened), so that convscope can
           check both sides compute the same thing
  run      {method}                   one timed run: fwdbwd (the target's logit, forward and
                                      its gradient to the input alone: the baseline) | gradcam | saliency |
                                      ig | occlusion; answers seconds
  quit
Answers are {"ok": true, ...} or {"ok": false, "error": "..."}.

The methods as captum 0.9.0 runs them: LayerGradCam(relu_attributions=True) at `layer`,
Saliency(abs=True), IntegratedGradients (Gauss-Legendre, `steps`, the baseline zero after
normalisation, convscope's `Baseline::Mean`, with the convergence delta: convscope always
reports completeness), Occlusion (a square window over every channel, baseline 0, `batch`
windows per pass). IG's internal_batch_size is `batch`, as convscope's chunk.
"""

import json
import os
import sys
import time
import traceback

PROTOCOL = sys.stdout
sys.stdout = sys.stderr

import torch  # noqa: E402
import torchvision  # noqa: E402
from captum.attr import IntegratedGradients, LayerGradCam, Occlusion, Saliency  # noqa: E402
from safetensors.torch import load_file  # noqa: E402


def build(case):
    if case == "efficientnet_lite0":
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name("efficientnet-lite0")
    if case == "inception_v3":
        return torchvision.models.inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=True)
    return getattr(torchvision.models, case)(weights=None)


class Bench:
    def prepare(self, req):
        model = build(req["case"])
        missing, unexpected = model.load_state_dict(load_file(req["weights"]), strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ValueError(f"state dict mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self.model = model.eval()
        self.x = load_file(req["input"])["input"]
        self.target = int(req["target"])
        self.steps = int(req["steps"])
        self.window = int(req["window"])
        self.stride = int(req["stride"])
        self.batch = int(req["batch"])
        self.layer = self.model.get_submodule(req["layer"])
        with torch.no_grad():
            logits = self.model(self.x)
        maps = {m: self.attribute(m).detach().flatten().tolist() for m in ["gradcam", "saliency", "ig", "occlusion"]}
        return {"logits": logits[0].tolist(), "maps": maps}

    def attribute(self, method):
        x, t = self.x, self.target
        if method == "fwdbwd":
            # The gradient to the input alone, as the methods take it (`backward()` would also
            # compute every weight's gradient, which no attribution needs).
            x = x.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.model(x)[0, t], x)
            return grad
        if method == "gradcam":
            return LayerGradCam(self.model, self.layer).attribute(x, target=t, relu_attributions=True)
        if method == "saliency":
            return Saliency(self.model).attribute(x, target=t, abs=True)
        if method == "ig":
            attribution, _delta = IntegratedGradients(self.model).attribute(
                x, baselines=torch.zeros_like(x), target=t, n_steps=self.steps, internal_batch_size=self.batch,
                return_convergence_delta=True,
            )
            return attribution
        if method == "occlusion":
            w = self.window
            return Occlusion(self.model).attribute(
                x, sliding_window_shapes=(x.shape[1], w, w), strides=(x.shape[1], self.stride, self.stride),
                baselines=0, target=t, perturbations_per_eval=self.batch,
            )
        raise ValueError(f"unknown method {method}")

    def run(self, req):
        start = time.perf_counter()
        self.attribute(req["method"])
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
                import captum

                answer = {"torch": torch.__version__, "captum": captum.__version__}
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
