"""The PyTorch side of `convscope bench`: a long-lived child speaking line-delimited JSON.

  .venv/bin/python bench/reference.py

convscope starts this script once, then sends one JSON object per line on stdin and reads
one JSON object per line on stdout, so that its rounds and ours can alternate without paying
Python's start-up each time. Every timing is taken here, around the operation alone
(`time.perf_counter`, after `torch.cuda.synchronize` on CUDA), exactly as convscope times its
own side; the pipe's latency is never measured.

Requests (`cmd`):
  setup    {threads}                       torch.set_num_threads; answers versions
  prepare  {case, weights, input, image, preprocess, device}
           builds the reference model, loads the safetensors weights convscope wrote, reads the
           shared input; answers the plain-forward logits (for the same-weights check) and the
           image's top-5
  run      {mode}                          one timed run: forward | forward-nchw | forward-nhwc | capture |
                                           gradients | top5 | load;
                                           answers seconds and minor page faults
  top5_parts {repeats}                     median seconds of decode, transforms, forward + top-5
  reset_peak                               resets VmHWM (peak RSS) to the current RSS
  peak                                     answers VmHWM in bytes
  quit
Answers are {"ok": true, ...} or {"ok": false, "error": "..."}.

The references, as in tests/fixtures/cases_*.py: torchvision's models (`weights=None`), with
inception_v3 built like its pretrained weights (aux_logits=True, transform_input=True), and
EfficientNet-Lite0 from the PyPI package `efficientnet_lite_pytorch`.
"""

import contextlib
import json
import os
import resource
import sys
import time
import traceback

# Everything any library prints goes to stderr: stdout carries the protocol alone.
PROTOCOL = sys.stdout
sys.stdout = sys.stderr

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from torchvision import transforms as T  # noqa: E402


def build(case):
    """The reference model of a case, randomly initialised as its constructor does."""
    if case == "inception_v3":
        return torchvision.models.inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=True)
    if case == "efficientnet_lite0":
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name("efficientnet-lite0")
    return getattr(torchvision.models, case)(weights=None)


def peak_rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak():
    """Linux (4.0+): writing 5 to clear_refs sets the high-water mark to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Bench:
    def __init__(self):
        self.model = None
        self.kept = []
        self.device = torch.device("cpu")

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def set_inplace(self, inplace):
        """torchvision's in-place ReLUs would overwrite the outputs the hooks keep (and break
        retain_grad); capture and gradients run with inplace=False, like the fixtures."""
        for m in self.model.modules():
            if hasattr(m, "inplace") and isinstance(m.inplace, bool):
                m.inplace = inplace

    def load(self):
        """Model construction + load_state_dict from the safetensors file, on the device."""
        model = build(self.case)
        # As users do: the state dict on the CPU, then the model to the device. convscope's
        # files hold no num_batches_tracked; BatchNorm fills it in itself.
        model.load_state_dict(load_file(self.weights), strict=False)
        return model.to(self.device).eval()

    def prepare(self, req):
        self.case = req["case"]
        self.weights = req["weights"]
        self.device = torch.device(req.get("device", "cpu"))
        self.image = req["image"]
        model = build(self.case)
        missing, unexpected = model.load_state_dict(load_file(self.weights), strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ValueError(f"state dict mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self.model = model.to(self.device).eval()
        self.modules = [m for name, m in self.model.named_modules() if name]
        self.params = [p for p in self.model.parameters()]
        self.x = load_file(req["input"])["input"].to(self.device)
        self.x_channels_last = self.x.to(memory_format=torch.channels_last)
        pre = req["preprocess"]
        mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}[pre["interpolation"]]
        self.transform = T.Compose([
            T.Resize(pre["resize"], interpolation=mode),
            T.CenterCrop(pre["crop"]),
            T.ToTensor(),
            T.Normalize(pre["mean"], pre["std"]),
        ])
        with torch.inference_mode():
            logits = self.model(self.x).float().cpu()
        return {
            "logits": logits[0].tolist(),
            "top5": self.top5(),
            "modules": len(self.modules),
            "params": len(self.params),
        }

    # ---- the five modes ------------------------------------------------------------------

    def forward(self, x=None):
        with torch.inference_mode():
            y = self.model(self.x if x is None else x)
        self.sync()
        return y

    def capture(self):
        """Every module's output (leaves and containers) kept by the forward hooks that
        `mode_settings` registered outside the timed region."""
        with torch.no_grad():
            self.model(self.x)
        self.sync()
        kept, self.kept = self.kept, []
        return len(kept)

    def gradients(self):
        """Forward + backward of the cross-entropy for the predicted class; the gradient norm
        of every module output (retain_grad from the forward hooks) and every parameter."""
        try:
            x = self.x.detach().requires_grad_(True)
            logits = self.model(x)
            target = logits.argmax(-1)
            loss = F.cross_entropy(logits, target)
            loss.backward()
            # A container returning its last child's output holds the same tensor: one norm each.
            outputs = {id(t): t for t in self.kept}.values()
            norms = [t.grad.norm().item() if t.grad is not None else 0.0 for t in outputs]
            norms += [p.grad.norm().item() if p.grad is not None else 0.0 for p in self.params]
            loss.item()
            self.sync()
        finally:
            self.kept = []
            for p in self.params:
                p.grad = None
        return len(norms)

    def top5(self):
        image = Image.open(self.image).convert("RGB")
        x = self.transform(image).unsqueeze(0).to(self.device)
        with torch.inference_mode():
            probs = self.model(x).softmax(-1)[0]
            values, indices = probs.topk(5)
        return list(zip(indices.tolist(), values.tolist()))

    def top5_parts(self, repeats):
        """Median seconds of the top-5 pipeline's parts: decode, transforms, forward + top-5."""
        parts = {"decode": [], "preprocess": [], "forward": []}
        for _ in range(repeats):
            t0 = time.perf_counter()
            image = Image.open(self.image).convert("RGB")
            t1 = time.perf_counter()
            x = self.transform(image).unsqueeze(0).to(self.device)
            t2 = time.perf_counter()
            with torch.inference_mode():
                self.model(x).softmax(-1)[0].topk(5)[1].tolist()
            self.sync()
            t3 = time.perf_counter()
            parts["decode"].append(t1 - t0)
            parts["preprocess"].append(t2 - t1)
            parts["forward"].append(t3 - t2)
        return {k: sorted(v)[len(v) // 2] for k, v in parts.items()}

    def load_once(self):
        model = self.load()
        self.sync()
        del model

    def run(self, mode):
        """Seconds of one run, and the minor page faults it took (the whole process)."""
        with self.mode_settings(mode):
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            if mode in ("forward", "forward-nchw"):
                self.forward()
            elif mode == "forward-nhwc":
                self.forward(self.x_channels_last)
            elif mode == "capture":
                self.capture()
            elif mode == "gradients":
                self.gradients()
            elif mode == "top5":
                self.top5()
                self.sync()
            elif mode == "load":
                self.load_once()
            else:
                raise ValueError(f"unknown mode {mode!r}")
            seconds = time.perf_counter() - start
            return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults

    @contextlib.contextmanager
    def mode_settings(self, mode):
        """Outside the timed region: the hooks of capture and gradients (the plain model has
        none, as users run it) and in-place activations switched off for them; for
        forward-nhwc, the model's 4-D weights in channels_last, as PyTorch's docs advise (in
        place and back afterwards, so no second copy of the weights counts in the peak RSS)."""
        if mode == "forward-nhwc":
            self.model.to(memory_format=torch.channels_last)
            try:
                yield
            finally:
                self.model.to(memory_format=torch.contiguous_format)
            return
        if mode not in ("capture", "gradients"):
            yield
            return
        self.kept = []
        if mode == "capture":
            def hook(_m, _i, out):
                self.kept.append(out)
        else:
            def hook(_m, _i, out):
                if isinstance(out, torch.Tensor) and out.requires_grad:
                    out.retain_grad()
                    self.kept.append(out)
        handles = [m.register_forward_hook(hook) for m in self.modules]
        self.set_inplace(False)
        try:
            yield
        finally:
            self.set_inplace(True)
            for h in handles:
                h.remove()
            self.kept = []


def handle(bench, req):
    cmd = req.get("cmd")
    if cmd == "setup":
        torch.set_num_threads(int(req["threads"]))
        return {
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(),
        }
    if cmd == "prepare":
        return bench.prepare(req)
    if cmd == "run":
        seconds, faults = bench.run(req["mode"])
        return {"seconds": seconds, "minor_faults": faults}
    if cmd == "top5_parts":
        return bench.top5_parts(int(req.get("repeats", 5)))
    if cmd == "reset_peak":
        return {"reset": reset_peak()}
    if cmd == "peak":
        return {"bytes": peak_rss()}
    raise ValueError(f"unknown command {cmd!r}")


def main():
    bench = Bench()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            if req.get("cmd") == "quit":
                break
            answer = {"ok": True, **handle(bench, req)}
        except Exception as e:  # the error goes back to convscope, which reports it
            traceback.print_exc(file=sys.stderr)
            answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        PROTOCOL.write(json.dumps(answer) + "\n")
        PROTOCOL.flush()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
