//! JPEG photos as a notebook reads them: every chroma subsampling, progressive, grey, CMYK,
//! odd sizes, restart markers and EXIF rotations decode to Pillow's pixels byte for byte, and
//! preprocess to torchvision's tensor; a file with damaged data decodes as Pillow's does, but
//! for the damaged blocks. Hostile JPEGs are refused with a reason, quickly, without a panic.

mod common;

use std::time::{Duration, Instant};

use common::*;
use convscope_core::preprocess::{Interpolation, Preprocess, decode_image, load_image};

#[derive(serde::Deserialize)]
struct Reference {
    libjpeg_turbo: String,
    images: Vec<ReferenceImage>,
}

#[derive(serde::Deserialize)]
struct ReferenceImage {
    name: String,
    width: u32,
    height: u32,
    mode: String,
}

/// A baseline JPEG (progressive with libjpeg's simple script if asked) written by libjpeg
/// with libjpeg-turbo's defaults, luma sampled `h`×`v` times as densely as chroma: the
/// subsamplings Pillow cannot write (4:4:0 is `1, 2`, 4:1:1 is `4, 1`).
fn encode(rgb: &image::RgbImage, (h, v): (i32, i32), quality: i32, progressive: bool) -> Vec<u8> {
    use mozjpeg_sys::*;
    unsafe extern "C-unwind" fn panic_on_error(_cinfo: &mut jpeg_common_struct) {
        panic!("libjpeg could not write the test JPEG");
    }
    // SAFETY: the usual libjpeg compression sequence; the rows handed to
    // jpeg_write_scanlines are `width` RGB pixels each, and jpeg_mem_dest's buffer is
    // malloc'ed by libjpeg and freed here once copied.
    unsafe {
        let mut err: jpeg_error_mgr = std::mem::zeroed();
        let mut cinfo: jpeg_compress_struct = std::mem::zeroed();
        jpeg_std_error(&mut err);
        err.error_exit = Some(panic_on_error);
        cinfo.common.err = &mut err;
        jpeg_create_compress(&mut cinfo);
        let mut buffer: *mut u8 = std::ptr::null_mut();
        let mut size: std::ffi::c_ulong = 0;
        jpeg_mem_dest(&mut cinfo, &mut buffer, &mut size);
        cinfo.image_width = rgb.width();
        cinfo.image_height = rgb.height();
        cinfo.input_components = 3;
        cinfo.in_color_space = J_COLOR_SPACE::JCS_RGB;
        jpeg_c_set_int_param(&mut cinfo, J_INT_PARAM::JINT_COMPRESS_PROFILE, JCP_FASTEST as i32);
        jpeg_set_defaults(&mut cinfo);
        jpeg_set_quality(&mut cinfo, quality, 1);
        if progressive {
            jpeg_simple_progression(&mut cinfo);
        }
        let components = std::slice::from_raw_parts_mut(cinfo.comp_info, 3);
        components[0].h_samp_factor = h;
        components[0].v_samp_factor = v;
        for chroma in &mut components[1..] {
            chroma.h_samp_factor = 1;
            chroma.v_samp_factor = 1;
        }
        jpeg_start_compress(&mut cinfo, 1);
        for row in rgb.as_raw().chunks_exact(rgb.width() as usize * 3) {
            let rows = [row.as_ptr()];
            jpeg_write_scanlines(&mut cinfo, rows.as_ptr(), 1);
        }
        jpeg_finish_compress(&mut cinfo);
        let bytes = std::slice::from_raw_parts(buffer, size as usize).to_vec();
        libc::free(buffer.cast());
        jpeg_destroy_compress(&mut cinfo);
        bytes
    }
}

fn chelsea() -> image::RgbImage {
    image::open(manifest_dir().join("assets/chelsea.png")).unwrap().to_rgb8()
}

#[test]
fn jpeg_photos_decode_to_pillows_pixels_and_preprocess_to_torchvisions_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let photo = chelsea();
    let odd = image::imageops::crop_imm(&photo, 40, 30, 333, 217).to_image();
    for (name, rgb, sampling) in
        [("chelsea_440.jpg", &photo, (1, 2)), ("odd_440.jpg", &odd, (1, 2)), ("chelsea_411.jpg", &photo, (4, 1))]
    {
        std::fs::write(dir.path().join(name), encode(rgb, sampling, 90, false)).unwrap();
    }

    // The model `make run` opens, and its preprocessing.
    let preprocess = convscope_core::zoo::find("efficientnet_lite0").unwrap().preprocess;
    let Preprocess::ImageNet { resize, crop, interpolation, mean, std } = preprocess else {
        panic!("efficientnet_lite0 takes ImageNet-style preprocessing");
    };
    let join = |v: [f32; 3]| v.map(|x| x.to_string()).join(",");
    let output = std::process::Command::new(manifest_dir().join(".venv/bin/python"))
        .arg(manifest_dir().join("crates/convscope-core/tests/jpeg_reference.py"))
        .arg(dir.path())
        .args([
            resize.to_string(),
            crop.to_string(),
            if interpolation == Interpolation::Bicubic { "bicubic" } else { "bilinear" }.into(),
            join(mean),
            join(std),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let reference: Reference = serde_json::from_slice(&output.stdout).unwrap();
    eprintln!("Pillow's libjpeg-turbo: {}", reference.libjpeg_turbo);
    let modes: Vec<&str> = reference.images.iter().map(|image| image.mode.as_str()).collect();
    assert!(reference.images.len() >= 18 && modes.contains(&"L") && modes.contains(&"CMYK"), "{modes:?}");

    let mut failures = Vec::new();
    for expected in &reference.images {
        let path = dir.path().join(&expected.name);
        let image = load_image(&path).unwrap_or_else(|e| panic!("{e}"));
        let ours = image.to_rgb8();
        assert_eq!(ours.dimensions(), (expected.width, expected.height), "{}", expected.name);
        let stem = expected.name.trim_end_matches(".jpg");
        let theirs = std::fs::read(dir.path().join(format!("{stem}.rgb"))).unwrap();
        let differing = ours.as_raw().iter().zip(&theirs).filter(|(a, b)| a != b).count();
        let worst = ours.as_raw().iter().zip(&theirs).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);

        let tensor = preprocess.apply(&image).unwrap();
        let torchvision = &read(&dir.path().join(format!("{stem}.safetensors")))["input"];
        assert_eq!(tensor.size(), torchvision.size(), "{}", expected.name);
        let tensor_diff = (&tensor - torchvision).abs().max().double_value(&[]);
        eprintln!(
            "{:28} {:>4}×{:<4} {:5}: {differing} bytes differ from Pillow (at most {worst}), tensor within {tensor_diff:e}",
            expected.name, expected.width, expected.height, expected.mode
        );
        let exact = differing == 0 && tensor_diff <= 1e-6;
        // Damaged data can dequantize to coefficients out of any real image's range, where
        // libjpeg-turbo's C IDCT (ours: no SIMD without nasm) and its SIMD one (Pillow's)
        // overflow differently: a block or two differ, as between Pillow and the same
        // libjpeg-turbo run with JSIMD_FORCENONE=1. The rest of the image must still match.
        let damaged_but_close = expected.name.contains("corrupt") && differing * 1000 <= theirs.len();
        if !exact && !damaged_but_close {
            failures.push(format!(
                "{}: {differing} bytes differ (by up to {worst}), tensor by {tensor_diff:e}",
                expected.name
            ));
        }
    }
    assert!(failures.is_empty(), "against Pillow {}:\n{}", reference.libjpeg_turbo, failures.join("\n"));
}

/// The offset of the first `FF <marker>` in a JPEG's bytes (entropy-coded data never holds
/// one: it stuffs `FF 00`).
fn marker(jpeg: &[u8], marker: u8) -> usize {
    jpeg.windows(2).position(|w| w == [0xFF, marker]).unwrap_or_else(|| panic!("no FF {marker:02X}"))
}

fn refused(what: &str, bytes: &[u8], expected: &[&str]) {
    let start = Instant::now();
    let outcome = std::panic::catch_unwind(|| decode_image(bytes));
    let elapsed = start.elapsed();
    let Ok(result) = outcome else { panic!("{what}: the decoder panicked") };
    let Err(reason) = result else { panic!("{what}: decoded, expected a refusal") };
    assert!(expected.iter().any(|word| reason.contains(word)), "{what}: {reason}");
    assert!(elapsed < Duration::from_secs(2), "{what}: took {elapsed:?}");
    eprintln!("{what}: {reason} ({elapsed:?})");
}

#[test]
fn hostile_jpegs_are_refused_with_a_reason_quickly() {
    let small = image::imageops::thumbnail(&chelsea(), 64, 48);
    let jpeg = encode(&small, (2, 2), 90, false);
    assert_eq!(decode_image(&jpeg).unwrap().width(), 64, "the base file decodes");
    let sof = marker(&jpeg, 0xC0);

    refused("cut in half", &jpeg[..jpeg.len() / 2], &["truncated"]);
    // Pillow refuses a file that misses only its end marker too.
    refused("no end marker", &jpeg[..jpeg.len() - 2], &["truncated"]);
    refused("header only", &jpeg[..sof + 12], &["truncated"]);

    let mut huffman = jpeg.clone();
    let dht = marker(&huffman, 0xC4);
    // The 16 code-length counts after the table's class byte: 16 × 255 codes > 256 symbols.
    huffman[dht + 5..dht + 21].fill(0xFF);
    refused("corrupt Huffman table", &huffman, &["corrupt", "Huffman"]);

    let mut huge = jpeg.clone();
    huge[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]); // 60000×60000
    refused("60000×60000 declared", &huge, &["too large"]);
    // Within the side limit, but 16000×16000 RGB is 768 MB of pixels: refused from the header.
    huge[sof + 5..sof + 9].copy_from_slice(&[0x3E, 0x80, 0x3E, 0x80]);
    refused("16000×16000 declared", &huge, &["too large"]);

    let mut zero_length = jpeg.clone();
    zero_length[sof + 2..sof + 4].fill(0);
    refused("SOF of length 0", &zero_length, &["corrupt"]);
    let mut zero_width = jpeg.clone();
    zero_width[sof + 7..sof + 9].fill(0);
    refused("SOF of width 0", &zero_width, &["corrupt"]);
    let mut twelve_bit = jpeg.clone();
    twelve_bit[sof + 4] = 12;
    refused("12-bit samples", &twelve_bit, &["unsupported"]);
    refused("no frame after the signature", &[0xFF, 0xD8, 0xFF, 0xD9], &["corrupt", "truncated"]);
    refused("garbage after the signature", b"\xFF\xD8\xFFthis is no JPEG at all", &["corrupt"]);

    // A progressive file whose last scan is repeated 150 times: each scan passes over the
    // whole image, so a few kilobytes could keep the decoder busy for minutes.
    let progressive = encode(&small, (2, 2), 90, true);
    let last_scan = progressive.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
    let mut many = progressive[..progressive.len() - 2].to_vec();
    for _ in 0..150 {
        many.extend_from_slice(&progressive[last_scan..progressive.len() - 2]);
    }
    many.extend_from_slice(&[0xFF, 0xD9]);
    assert!(decode_image(&progressive).is_ok(), "the progressive base file decodes");
    refused("150 progressive scans", &many, &["scans"]);
}

#[test]
fn a_progressive_jpeg_too_large_for_the_memory_budget_is_refused_before_decoding() {
    // 11000×11000 grey is 121 MB of pixels, under the limit, but progressive decoding keeps
    // every coefficient (2 bytes a pixel, 242 MB) too: past the 512 MB budget with RGB, so
    // take an RGB one of 9000×9000 (243 MB of pixels, 486 MB of coefficients at 4:4:4).
    let small = image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([(x * 16) as u8, (y * 16) as u8, 128]));
    let mut jpeg = encode(&small, (1, 1), 90, true);
    let sof = marker(&jpeg, 0xC2);
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0x23, 0x28, 0x23, 0x28]); // 9000×9000
    refused("9000×9000 progressive", &jpeg, &["too large"]);
}
