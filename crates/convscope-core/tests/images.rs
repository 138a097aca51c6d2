//! Images as users have them: EXIF-rotated photos, grey, grey+alpha, 16-bit and palette
//! PNGs all become the tensor the network expects.

mod common;

use common::*;
use convscope_core::preprocess::{Preprocess, decode_image, load_image};

fn python(script: &str) {
    let output =
        std::process::Command::new(manifest_dir().join(".venv/bin/python")).args(["-c", script]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn exif_orientation_is_respected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotated.jpg");
    // 60 wide, 20 tall, marked "rotate 90° clockwise to display" (orientation 6).
    python(&format!(
        "from PIL import Image\nimg = Image.new('RGB', (60, 20), (200, 30, 30))\nexif = Image.Exif()\nexif[0x0112] = 6\nimg.save('{}', exif=exif)\n",
        path.display()
    ));
    let image = load_image(&path).unwrap();
    assert_eq!((image.width(), image.height()), (20, 60), "shown upright, as a viewer shows it");
}

#[test]
fn every_pixel_format_becomes_the_expected_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    let grey = image::GrayImage::from_fn(50, 40, |x, _| image::Luma([(x * 5) as u8]));
    paths.push(dir.path().join("grey.png"));
    grey.save(paths.last().unwrap()).unwrap();
    let grey_alpha = image::GrayAlphaImage::from_fn(50, 40, |x, y| image::LumaA([(x * 5) as u8, (y * 6) as u8]));
    paths.push(dir.path().join("grey_alpha.png"));
    grey_alpha.save(paths.last().unwrap()).unwrap();
    let deep = image::ImageBuffer::<image::Rgb<u16>, Vec<u16>>::from_fn(50, 40, |x, y| {
        image::Rgb([x as u16 * 1000, y as u16 * 1500, 40000])
    });
    paths.push(dir.path().join("deep16.png"));
    image::DynamicImage::ImageRgb16(deep).save(paths.last().unwrap()).unwrap();
    let rgba = image::RgbaImage::from_fn(50, 40, |x, y| image::Rgba([x as u8, y as u8, 9, 128]));
    paths.push(dir.path().join("rgba.png"));
    rgba.save(paths.last().unwrap()).unwrap();
    let palette = dir.path().join("palette.png");
    python(&format!(
        "from PIL import Image\nImage.new('RGB', (50, 40), (10, 200, 30)).convert('P', palette=Image.ADAPTIVE).save('{}')\n",
        palette.display()
    ));
    paths.push(palette);

    for path in &paths {
        let image = load_image(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let imagenet = Preprocess::imagenet(256, 224).apply(&image).unwrap();
        assert_eq!(imagenet.size(), vec![1, 3, 224, 224], "{}", path.display());
        let digit = Preprocess::Digit { size: 32 }.apply(&image).unwrap();
        assert_eq!(digit.size(), vec![1, 1, 32, 32], "{}", path.display());
        assert!(imagenet.isfinite().all().int64_value(&[]) == 1);
    }
    // 16-bit values map to the same range as 8-bit ones.
    let deep = Preprocess::imagenet(50, 40).apply(&load_image(&paths[2]).unwrap()).unwrap();
    let max = deep.max().double_value(&[]);
    assert!(max < (1.0 - 0.406) / 0.225 + 1e-3, "{max}");
}

#[test]
fn hostile_files_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    assert!(load_image(&empty).unwrap_err().to_string().contains("empty"));
    assert!(load_image(dir.path()).unwrap_err().to_string().contains("directory"));
    let mut png = Vec::new();
    image::RgbImage::new(64, 64).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let truncated = decode_image(&png[..png.len() / 2]).unwrap_err();
    assert!(truncated.contains("corrupt") || truncated.contains("truncated"), "{truncated}");
    // A header claiming 20000×20000 pixels is refused before any pixel is decoded.
    let mut huge = png.clone();
    huge[16..20].copy_from_slice(&20_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&20_000u32.to_be_bytes());
    // A valid checksum, so only the size is wrong with it.
    let mut crc = flate2::Crc::new();
    crc.update(&huge[12..29]);
    huge[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    let refused = decode_image(&huge).unwrap_err();
    assert!(refused.contains("too large"), "{refused}");
}

#[test]
fn the_formats_people_drop_decode_or_say_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    // Made by PIL, the way such files usually come into being.
    python(&format!(
        "from PIL import Image\n\
         a = Image.new('RGB', (30, 20), (255, 0, 0)); b = Image.new('RGB', (30, 20), (0, 0, 255))\n\
         a.save('{d}/anim.gif', save_all=True, append_images=[b], duration=100, loop=0)\n\
         a.save('{d}/img.bmp'); a.save('{d}/img.webp'); a.save('{d}/img.tiff')\n\
         Image.new('CMYK', (30, 20), (0, 255, 255, 0)).save('{d}/cmyk.jpg')\n\
         Image.new('RGB', (1, 1), (9, 9, 9)).save('{d}/one.png'); Image.new('RGB', (3, 1), (9, 9, 9)).save('{d}/three.png')\n"
    ));
    for name in ["anim.gif", "img.bmp", "img.webp", "img.tiff", "cmyk.jpg"] {
        let image = load_image(&dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((image.width(), image.height()), (30, 20), "{name}");
        let rgb = image.to_rgb8();
        let p = rgb.get_pixel(15, 10);
        // The GIF shows its first (red) frame; the CMYK file is red too (C 0, M and Y full, K 0).
        assert!(p[0] > 200 && p[2] < 60, "{name}: {p:?}");
    }
    for name in ["one.png", "three.png"] {
        let image = load_image(&dir.path().join(name)).unwrap();
        assert_eq!(Preprocess::imagenet(256, 224).apply(&image).unwrap().size(), vec![1, 3, 224, 224], "{name}");
    }
}

/// Every preprocessing the zoo uses, once each.
fn zoo_preprocessings() -> Vec<Preprocess> {
    let mut presets = Vec::new();
    for spec in convscope_core::zoo::all() {
        if !presets.contains(&spec.preprocess) {
            presets.push(spec.preprocess);
        }
    }
    presets
}

#[test]
fn every_format_the_fuzzer_starts_from_decodes() {
    // One small file per format and pixel layout (fuzz/make_seeds.py): PNG in every colour
    // type, baseline/progressive/grey/CMYK/EXIF JPEG, GIF, BMP, WebP, TIFF, ICO, PNM, TGA, HDR, QOI.
    let dir = manifest_dir().join("fuzz/seeds/image");
    let mut count = 0;
    for path in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()) {
        let image = load_image(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let tensor = Preprocess::imagenet(256, 224).apply(&image).unwrap();
        assert_eq!(tensor.size(), vec![1, 3, 224, 224], "{}", path.display());
        count += 1;
    }
    assert!(count >= 25, "only {count} seeds in {}", dir.display());
}

#[test]
fn inputs_the_fuzzer_found_slow_or_crashing_now_pass_quickly() {
    let dir = manifest_dir().join("fuzz/regressions/image_decode");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty(), "no regression inputs in {}", dir.display());
    for path in files {
        let start = std::time::Instant::now();
        // Decoding may refuse them; what decodes must preprocess for every architecture.
        if let Ok(image) = load_image(&path) {
            for preprocess in zoo_preprocessings() {
                let tensor = preprocess.apply(&image).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert_eq!(tensor.size()[2..], preprocess.output_size(), "{}", path.display());
            }
        }
        assert!(start.elapsed().as_secs() < 10, "{} took {:?}", path.display(), start.elapsed());
    }
}

#[test]
fn a_one_pixel_line_is_cropped_about_its_middle_not_resized_whole() {
    // 1×16384 and 16384×1, blue with a red middle: 115-byte PNGs that torchvision's resize
    // would blow up to 256×4194304 pixels (3 GB) before cropping their middle.
    for (w, h) in [(1u32, 16_384u32), (16_384, 1)] {
        let line = image::RgbImage::from_fn(w, h, |x, y| {
            let along = x.max(y);
            if (8160..8224).contains(&along) { image::Rgb([250, 0, 0]) } else { image::Rgb([0, 0, 250]) }
        });
        let mut png = Vec::new();
        line.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let image = decode_image(&png).unwrap();
        let start = std::time::Instant::now();
        for preprocess in [Preprocess::imagenet(256, 224), Preprocess::imagenet(600, 600)] {
            let tensor = preprocess.apply(&image).unwrap();
            let size = preprocess.output_size();
            assert_eq!(tensor.size(), vec![1, 3, size[0], size[1]]);
            // Normalised red is high in channel 0 and low in channel 2 everywhere: the middle.
            let red = tensor.get(0).get(0).min().double_value(&[]);
            let blue = tensor.get(0).get(2).max().double_value(&[]);
            assert!(red > 1.5 && blue < -1.5, "{w}×{h}: red {red}, blue {blue}: not the middle");
        }
        assert!(start.elapsed().as_secs() < 10, "{w}×{h} took {:?}", start.elapsed());
    }
}
