"""The Pillow side of tests/jpeg.rs.

  jpeg_reference.py DIR RESIZE CROP INTERPOLATION MEAN STD

Writes into DIR the JPEGs Pillow makes from the bundled photos (each chroma subsampling
Pillow writes, progressive, grey, CMYK, an odd size, restart markers, flipped bits in the data, EXIF-rotated), then
reads every DIR/*.jpg (those and any the Rust side wrote) as a notebook does,
`ImageOps.exif_transpose(Image.open(path)).convert("RGB")`, and writes for each
DIR/<name>.rgb (the raw RGB bytes) and DIR/<name>.safetensors (`input`: torchvision's
Resize + CenterCrop + ToTensor + Normalize with the given settings). Prints JSON:
{"libjpeg_turbo": version, "images": [{"name", "width", "height", "mode"}]}.
"""

import json
import pathlib
import sys

from PIL import Image, ImageOps, features
from safetensors.torch import save_file
from torchvision import transforms as T

assets = pathlib.Path(__file__).resolve().parents[3] / "assets"


def write_jpegs(out):
    chelsea = Image.open(assets / "chelsea.png").convert("RGB")
    coffee = Image.open(assets / "coffee.png").convert("RGB")
    chelsea.save(out / "chelsea_444.jpg", quality=95, subsampling="4:4:4")
    chelsea.save(out / "chelsea_422.jpg", quality=90, subsampling="4:2:2")
    chelsea.save(out / "chelsea_420.jpg")  # Pillow's defaults: quality 75, 4:2:0
    chelsea.save(out / "chelsea_progressive.jpg", quality=85, progressive=True)
    chelsea.save(out / "chelsea_progressive_444.jpg", quality=92, subsampling="4:4:4", progressive=True, optimize=True)
    chelsea.convert("L").save(out / "chelsea_grey.jpg", quality=90)
    chelsea.convert("CMYK").save(out / "chelsea_cmyk.jpg", quality=90)
    chelsea.save(out / "chelsea_restarts.jpg", quality=80, restart_marker_rows=1)
    odd = chelsea.resize((333, 217), Image.Resampling.BICUBIC)
    odd.save(out / "odd_420.jpg", quality=88)
    odd.save(out / "odd_422.jpg", quality=88, subsampling="4:2:2")
    coffee.save(out / "coffee_420.jpg", quality=90)
    # Flipped bits in the entropy-coded data: libjpeg warns and goes on, and so does Pillow.
    data = bytearray((out / "chelsea_420.jpg").read_bytes())
    scan = data.rindex(b"\xff\xda")
    for i in range(scan + 2000, scan + 2400, 37):
        if 0xFF not in (data[i - 1], data[i], data[i] ^ 0x5A):
            data[i] ^= 0x5A
    (out / "chelsea_corrupt_data.jpg").write_bytes(bytes(data))
    for orientation in (3, 6, 8):
        exif = Image.Exif()
        exif[0x0112] = orientation
        coffee.save(out / f"coffee_exif{orientation}.jpg", quality=90, exif=exif)


def main():
    out = pathlib.Path(sys.argv[1])
    resize, crop, interpolation, mean, std = sys.argv[2:7]
    mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}[interpolation]
    transform = T.Compose([
        T.Resize(int(resize), interpolation=mode),
        T.CenterCrop(int(crop)),
        T.ToTensor(),
        T.Normalize([float(v) for v in mean.split(",")], [float(v) for v in std.split(",")]),
    ])
    write_jpegs(out)
    images = []
    for path in sorted(out.glob("*.jpg")):
        opened = Image.open(path)
        rgb = ImageOps.exif_transpose(opened).convert("RGB")
        (out / f"{path.stem}.rgb").write_bytes(rgb.tobytes())
        save_file({"input": transform(rgb).unsqueeze(0).contiguous()}, str(out / f"{path.stem}.safetensors"))
        images.append({"name": path.name, "width": rgb.width, "height": rgb.height, "mode": opened.mode})
    print(json.dumps({"libjpeg_turbo": features.version("libjpeg_turbo"), "images": images}))


if __name__ == "__main__":
    main()
