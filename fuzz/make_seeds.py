"""Writes the fuzzers' seed files: one small file per format and pixel layout convscope
reads, and small safetensors files, most of them lying. The output is committed under
fuzz/seeds/; running this again rewrites the same files.

    .venv/bin/python fuzz/make_seeds.py
"""
import json
import pathlib
import struct

from PIL import Image

here = pathlib.Path(__file__).parent
images = here / "seeds" / "image"
weights = here / "seeds" / "weights"
images.mkdir(parents=True, exist_ok=True)
weights.mkdir(parents=True, exist_ok=True)


def gradient(mode, size=(12, 8)):
    img = Image.new("RGB", size)
    img.putdata([((x * 20) % 256, (y * 30) % 256, 90) for y in range(size[1]) for x in range(size[0])])
    return img.convert(mode)


def save(name, img, **kwargs):
    img.save(images / name, **kwargs)


save("rgb.png", gradient("RGB"))
save("rgba.png", gradient("RGBA"))
save("grey.png", gradient("L"))
save("grey_alpha.png", gradient("LA"))
save("palette.png", gradient("RGB").convert("P", palette=Image.ADAPTIVE, colors=8))
save("deep16.png", gradient("I;16"))
save("interlaced.png", gradient("RGB"), optimize=False, interlace=1)
save("one.png", Image.new("RGB", (1, 1), (9, 9, 9)))
save("three_by_one.png", Image.new("RGB", (3, 1), (9, 9, 9)))
save("baseline.jpg", gradient("RGB"), quality=80)
save("progressive.jpg", gradient("RGB"), progressive=True)
save("grey.jpg", gradient("L"))
# Each subsampling and entropy layout takes its own path through libjpeg (jpeg.rs).
save("s444.jpg", gradient("RGB", (17, 9)), subsampling="4:4:4", quality=95)
save("s422.jpg", gradient("RGB", (17, 9)), subsampling="4:2:2")
save("restarts.jpg", gradient("RGB", (24, 16)), restart_marker_blocks=1)
save("progressive_444.jpg", gradient("RGB", (17, 9)), subsampling="4:4:4", progressive=True, optimize=True)
save("cmyk.jpg", gradient("CMYK"))
exif = Image.Exif()
exif[0x0112] = 6
save("rotated.jpg", gradient("RGB"), exif=exif)
frames = [gradient("RGB"), Image.new("RGB", (12, 8), (0, 0, 255))]
frames[0].save(images / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
save("img.bmp", gradient("RGB"))
save("lossy.webp", gradient("RGB"), quality=50)
save("lossless.webp", gradient("RGBA"), lossless=True)
save("img.tiff", gradient("RGB"))
save("lzw.tiff", gradient("RGB"), compression="tiff_lzw")
save("img.ico", gradient("RGBA", (16, 16)))
save("img.ppm", gradient("RGB"))
save("img.pgm", gradient("L"))
save("img.pbm", gradient("1"))
save("img.tga", gradient("RGB"))
save("rle.tga", gradient("RGB"), rle=True)
# Radiance HDR and QOI, which PIL does not write: made by hand, 2×2.
(images / "img.hdr").write_bytes(
    b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 2 +X 2\n" + bytes([128, 64, 32, 129] * 4)
)
qoi = b"qoif" + struct.pack(">IIBB", 2, 2, 3, 0)
qoi += bytes([0xFE, 200, 10, 10]) + bytes([0xC0 | 2]) + b"\x00" * 7 + b"\x01"
(images / "img.qoi").write_bytes(qoi)


def safetensors(name, tensors, metadata=None):
    """tensors: [(key, dtype, shape, bytes)]"""
    header, data = {}, b""
    for key, dtype, shape, raw in tensors:
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    (weights / name).write_bytes(struct.pack("<Q", len(text)) + text + data)


def f32(*values):
    return struct.pack(f"<{len(values)}f", *values)


safetensors("one_tensor.safetensors", [("conv1.bias", "F32", [6], f32(*range(6)))])
safetensors(
    "lenet_keys_wrong_shapes.safetensors",
    [("conv1.weight", "F32", [1, 2], f32(1, 2)), ("fc3.bias", "F16", [2], b"\x00\x3c\x00\x3c")],
    metadata={"format": "pt"},
)
safetensors("prefixed.safetensors", [("module.conv1.bias", "F64", [2], struct.pack("<2d", 1.0, float("nan")))])
safetensors("empty_shape.safetensors", [("x", "I64", [0, 3], b""), ("y", "BOOL", [], b"\x01")])
safetensors("no_tensors.safetensors", [])


def raw_header(name, text, data=b""):
    (weights / name).write_bytes(struct.pack("<Q", len(text)) + text + data)


# Headers that pass the size checks but lie in other ways: each is refused with a reason.
safetensors("zero_dim_overflow.safetensors", [("a", "F32", [2**63, 0], b"")])
safetensors("zero_dim_max.safetensors", [("a", "F32", [2**64 - 1, 0], b"")])
safetensors("fp8.safetensors", [("conv1.bias", "F8_E4M3", [6], b"\0" * 6)])
safetensors("bool_conv1.safetensors", [("conv1.weight", "BOOL", [6, 1, 5, 5], b"\1" * 150)])
safetensors("thousand_dims.safetensors", [("x", "F32", [1] * 1000, b"\0" * 4)])
raw_header("nested_metadata.safetensors", b'{"__metadata__":{"a":{"b":1}},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4)
raw_header("duplicate_key.safetensors", b'{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', b"\0" * 8)
raw_header("overlapping.safetensors", b'{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4)
raw_header("negative_offset.safetensors", b'{"x":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}', b"\0" * 4)
raw_header("deep_json.safetensors", b"[" * 1000 + b"]" * 1000)
