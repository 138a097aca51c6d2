//! An explanation on disk: the overlay as a PNG (a strip, coarse to fine, for several layers),
//! the raw maps as safetensors or NumPy's .npy, chosen by the file's extension. The command
//! line and the app's export write through here, so both write the same files.

use std::path::Path;

use image::RgbImage;
use tch::Tensor;

use super::display::{self, Colormap, DisplayMap};
use super::{ExplanationData, Method};
use crate::error::{Error, Result};
use crate::graph::Graph;

/// What a file's extension asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Png,
    Safetensors,
    Npy,
}

impl Format {
    pub fn of(path: &Path) -> Result<Format> {
        let extension = path.extension().and_then(|e| e.to_str()).map(str::to_lowercase);
        match extension.as_deref() {
            Some("png") => Ok(Format::Png),
            Some("safetensors") => Ok(Format::Safetensors),
            Some("npy") => Ok(Format::Npy),
            _ => Err(Error::Input(format!(
                "cannot tell what to write to {}: name it .png (the overlay), .safetensors or .npy (the raw map)",
                path.display()
            ))),
        }
    }
}

/// The name of each map in a safetensors file: `map` when there is one, `map.<node>` for each
/// layer when there are several.
pub fn map_names(explanation: &ExplanationData, graph: &Graph) -> Vec<String> {
    if explanation.maps.len() == 1 {
        return vec!["map".into()];
    }
    explanation
        .maps
        .iter()
        .enumerate()
        .map(|(i, m)| match m.node.and_then(|n| graph.nodes.get(n)) {
            Some(node) => format!("map.{}", node.name),
            None => format!("map.{i}"),
        })
        .collect()
}

/// The maps over `image` side by side (in the explanation's order: coarse to fine for stages),
/// a few pixels of white between them.
pub fn overlay_strip(image: &RgbImage, maps: &[&DisplayMap], opacity: f32, colormap: Colormap) -> RgbImage {
    const GAP: u32 = 4;
    let (w, h) = image.dimensions();
    let n = maps.len().max(1) as u32;
    let mut strip = RgbImage::from_pixel(n * w + (n - 1) * GAP, h, image::Rgb([255, 255, 255]));
    for (i, map) in maps.iter().enumerate() {
        let shown = display::overlay(image, map, opacity, &|v| colormap.rgb(v, map.shading));
        image::imageops::replace(&mut strip, &shown, i64::from(i as u32 * (w + GAP)), 0);
    }
    strip
}

/// Writes `explanation` to `path` as its extension says: the overlay over `image` (the input
/// as the network saw it), or the raw maps (with the logits in a safetensors file). An .npy
/// holds one array, so several maps there are an error that names the way out.
pub fn save(
    explanation: &ExplanationData,
    graph: &Graph,
    image: &RgbImage,
    opacity: f32,
    colormap: Colormap,
    path: &Path,
) -> Result<()> {
    let written = |e: &dyn std::fmt::Display| Error::File { path: path.to_owned(), reason: e.to_string() };
    let tensor = |shape: &[i64], values: &[f32]| Tensor::from_slice(values).f_view(shape).map_err(|e| written(&e));
    match Format::of(path)? {
        Format::Png => {
            let maps: Vec<&DisplayMap> = explanation.maps.iter().map(|m| &m.shown).collect();
            overlay_strip(image, &maps, opacity, colormap).save(path).map_err(|e| written(&e))
        }
        Format::Safetensors => {
            let mut named: Vec<(String, Tensor)> = map_names(explanation, graph)
                .into_iter()
                .zip(&explanation.maps)
                .map(|(name, m)| Ok((name, tensor(&m.shape, &m.raw)?)))
                .collect::<Result<_>>()?;
            named.push(("logits".into(), tensor(&[1, explanation.logits.len() as i64], &explanation.logits)?));
            Tensor::write_safetensors(&named, path).map_err(|e| written(&e))
        }
        Format::Npy => match explanation.maps.as_slice() {
            [one] => tensor(&one.shape, &one.raw)?.write_npy(path).map_err(|e| written(&e)),
            many => Err(Error::Input(format!(
                "an .npy file holds one array and {} {} gives {} maps: write .safetensors (one tensor per layer) \
                 or .png",
                explanation.method.label(),
                if explanation.method == Method::GuidedGradCam { "at several layers" } else { "at every stage" },
                many.len()
            ))),
        },
    }
}
