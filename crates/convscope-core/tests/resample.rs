//! convscope's resize against Pillow's, the resize torchvision's `Resize` runs on PIL images:
//! every byte must be the same, shrinking and enlarging, bilinear and bicubic.

mod common;

use common::manifest_dir;
use convscope_core::preprocess::Interpolation;
use convscope_core::resample::resize;

/// Pillow's RGB bytes for `image` resized to each `(width, height, filter)`.
fn pillow(image: &std::path::Path, sizes: &[(u32, u32, Interpolation)]) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let jobs: Vec<String> = sizes
        .iter()
        .enumerate()
        .map(|(i, (w, h, f))| {
            let filter = if *f == Interpolation::Bilinear { "BILINEAR" } else { "BICUBIC" };
            format!("({w}, {h}, Image.Resampling.{filter}, {:?})", dir.path().join(format!("{i}.raw")))
        })
        .collect();
    let script = format!(
        "from PIL import Image\nimg = Image.open({:?}).convert('RGB')\nfor w, h, f, out in [{}]:\n    open(out, 'wb').write(img.resize((w, h), f).tobytes())\n",
        image,
        jobs.join(", ")
    );
    let output =
        std::process::Command::new(manifest_dir().join(".venv/bin/python")).args(["-c", &script]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    (0..sizes.len()).map(|i| std::fs::read(dir.path().join(format!("{i}.raw"))).unwrap()).collect()
}

fn assert_same_as_pillow(image: &std::path::Path, sizes: &[(u32, u32, Interpolation)]) {
    let rgb = image::open(image).unwrap().to_rgb8();
    for ((w, h, filter), theirs) in sizes.iter().zip(pillow(image, sizes)) {
        let ours = resize(&rgb, *w, *h, *filter).into_raw();
        assert_eq!(ours.len(), theirs.len(), "{w}×{h} {filter:?}");
        let differing = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 0, "{}: {w}×{h} {filter:?}: {differing} bytes differ from Pillow", image.display());
    }
}

#[test]
fn photos_resize_exactly_like_pillow() {
    use Interpolation::{Bicubic, Bilinear};
    // chelsea.png is 451×300: torchvision's Resize(256) gives 384×256, Resize(299+) enlarges.
    assert_same_as_pillow(
        &manifest_dir().join("assets/chelsea.png"),
        &[
            (384, 256, Bilinear),
            (384, 256, Bicubic),
            (526, 350, Bilinear),
            (902, 600, Bicubic),
            (37, 23, Bilinear),
            (451, 120, Bicubic),
            (200, 300, Bilinear),
            (1, 1, Bilinear),
        ],
    );
    assert_same_as_pillow(
        &manifest_dir().join("assets/coffee.png"),
        &[(336, 224, Bicubic), (384, 256, Bilinear), (17, 640, Bicubic)],
    );
}

#[test]
fn a_large_noisy_image_shrinks_exactly_like_pillow() {
    // Noise has every level and every edge: the worst case for rounding differences.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("noise.png");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise = image::RgbImage::from_fn(2011, 1333, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    });
    noise.save(&path).unwrap();
    assert_same_as_pillow(&path, &[(386, 256, Interpolation::Bilinear), (339, 224, Interpolation::Bicubic)]);
}
