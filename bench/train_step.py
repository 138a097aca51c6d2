"""The PyTorch side of `convscope bench --train-step`: one training step of the lab's networks,
as a child speaking line-delimited JSON (the protocol of bench/reference.py).

Requests (`cmd`):
  setup    {threads}                          torch.set_num_threads; answers versions
  prepare  {name, config, weights, data, lr, momentum, weight_decay}
           builds the network (tests/fixtures/lab_reference.py's CifarNet, the lab's twin) from
           the safetensors weights convscope wrote, its torch.optim.SGD, and reads the images
           and labels convscope made (`images`, `labels` in `data`)
  run      {name, indices}                    one timed training step on those images; answers
                                              seconds and the loss
  quit

The step does what the lab's does, in the same order: the batch's rows of the images, forward
in train mode, mean cross-entropy, backward, every weighted layer's gradient norm (the lab's
heatmap), the SGD update, and the loss and the batch error read back as numbers.
"""

import json
import os
import sys
import time
import traceback

PROTOCOL = sys.stdout
sys.stdout = sys.stderr

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
from lab_reference import build, load  # noqa: E402


class Net:
    def __init__(self, req, data):
        self.model = load(build(req["config"]), req["weights"]).train()
        self.opt = torch.optim.SGD(
            self.model.parameters(), lr=req["lr"], momentum=req["momentum"], weight_decay=req["weight_decay"]
        )
        self.images, self.labels = data
        # Convolutions and the classifier, in depth order: the lab's weighted layers.
        self.weights = [m.weight for m in self.model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]

    def step(self, indices):
        rows = torch.tensor(indices, dtype=torch.int64)
        start = time.perf_counter()
        x = self.images.index_select(0, rows)
        y = self.labels.index_select(0, rows)
        self.opt.zero_grad()
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        norms = torch.stack([w.grad.norm() for w in self.weights]).tolist()
        self.opt.step()
        value = loss.item()
        error = 1.0 - (logits.argmax(-1) == y).sum().item() / len(indices)
        seconds = time.perf_counter() - start
        return seconds, value, error, len(norms)


def main():
    nets, data = {}, {}
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            cmd = req.get("cmd")
            if cmd == "quit":
                break
            if cmd == "setup":
                torch.set_num_threads(int(req["threads"]))
                answer = {"torch": torch.__version__, "threads": torch.get_num_threads()}
            elif cmd == "prepare":
                if req["data"] not in data:
                    tensors = load_file(req["data"])
                    data[req["data"]] = (tensors["images"], tensors["labels"])
                nets[req["name"]] = Net(req, data[req["data"]])
                answer = {}
            elif cmd == "run":
                seconds, loss, error, layers = nets[req["name"]].step(req["indices"])
                answer = {"seconds": seconds, "loss": loss, "error": error, "layers": layers}
            else:
                raise ValueError(f"unknown command {cmd!r}")
            answer = {"ok": True, **answer}
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        PROTOCOL.write(json.dumps(answer) + "\n")
        PROTOCOL.flush()


if __name__ == "__main__":
    main()
