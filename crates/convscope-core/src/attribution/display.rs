//! Attribution maps as people look at them: one value per input pixel, scaled to [0, 1]
//! (or [−1, 1] for signed maps), and over the image.
//!
//! - CAMs as pytorch-grad-cam shows them: min-max normalised at the layer's resolution,
//!   upsampled bilinearly to the input (OpenCV's `resize`, half-pixel centres), normalised again.
//! - Saliency and SmoothGrad: the largest magnitude over the channels (Simonyan et al.), scaled
//!   as captum's `visualize_image_attr` scales (outlier_perc 2: the value where the sorted
//!   magnitudes' running sum reaches 98% of their total maps to 1, above it is clipped).
//! - Signed maps (Guided Backprop, Guided Grad-CAM, IG, Occlusion): the sum over the channels,
//!   as `visualize_image_attr` sums, scaled the same way by magnitude, in [−1, 1].

use image::RgbImage;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::Method;
use crate::error::{Error, Result, TorchContext};

/// The colours of an overlay; one set for the command line's PNG and the app's view, so that
/// an exported picture is the one on screen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Colormap {
    /// Google's improved jet: pytorch-grad-cam's look (it uses OpenCV's jet), kinder to the eye.
    #[default]
    Turbo,
    Viridis,
    Inferno,
    /// ColorBrewer's RdBu run from blue (negative) to red (positive): for signed maps.
    RedBlue,
}

impl Colormap {
    pub const ALL: [Colormap; 4] = [Colormap::Turbo, Colormap::Viridis, Colormap::Inferno, Colormap::RedBlue];

    pub fn id(self) -> &'static str {
        match self {
            Colormap::Turbo => "turbo",
            Colormap::Viridis => "viridis",
            Colormap::Inferno => "inferno",
            Colormap::RedBlue => "red-blue",
        }
    }

    pub fn from_id(id: &str) -> Option<Colormap> {
        Colormap::ALL.into_iter().find(|c| c.id() == id)
    }

    /// What a map of this shading is drawn with unless asked otherwise.
    pub fn default_for(shading: Shading) -> Colormap {
        match shading {
            Shading::Cam | Shading::Magnitude => Colormap::Turbo,
            Shading::Signed => Colormap::RedBlue,
        }
    }

    /// The colour of `v` in a map of `shading` (signed maps run over [−1, 1], the others over
    /// [0, 1]); NaN is the low end, or zero for signed maps.
    pub fn rgb(self, v: f32, shading: Shading) -> [u8; 3] {
        let v = if v.is_nan() { 0.0 } else { v };
        let t = match shading {
            Shading::Signed => (v.clamp(-1.0, 1.0) + 1.0) / 2.0,
            Shading::Cam | Shading::Magnitude => v.clamp(0.0, 1.0),
        };
        let gradient = match self {
            Colormap::Turbo => colorous::TURBO,
            Colormap::Viridis => colorous::VIRIDIS,
            Colormap::Inferno => colorous::INFERNO,
            Colormap::RedBlue => colorous::RED_BLUE,
        };
        // colorous's RdBu starts at red; more is warmer here.
        let t = if self == Colormap::RedBlue { 1.0 - t } else { t };
        gradient.eval_continuous(f64::from(t)).into_array()
    }
}

/// How a map is drawn over the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Shading {
    /// A CAM: covers the image evenly, the colour saying how much (as pytorch-grad-cam shows it).
    Cam,
    /// A magnitude in [0, 1]: the more, the more opaque.
    Magnitude,
    /// A signed value in [−1, 1]: opacity with the magnitude, the colour with the sign.
    Signed,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DisplayMap {
    pub width: usize,
    pub height: usize,
    /// Row by row; [0, 1], or [−1, 1] where `shading` is `Signed`.
    pub values: Vec<f32>,
    pub shading: Shading,
}

/// How `method`'s maps are drawn.
pub fn shading(method: Method) -> Shading {
    if method.is_cam() {
        Shading::Cam
    } else if method.is_signed() {
        Shading::Signed
    } else {
        Shading::Magnitude
    }
}

/// The map `raw` (captum's shape, see `LayerMap`) of `method` for an `height`×`width` input.
pub fn display(method: Method, raw: &Tensor, height: i64, width: i64) -> Result<DisplayMap> {
    let context = || format!("showing {}", method.label());
    let shading = shading(method);
    let plane = match shading {
        Shading::Cam => cam_display(raw, height, width)?,
        Shading::Signed => {
            let summed = raw.f_sum_dim_intlist([0i64, 1].as_slice(), false, Kind::Float).context(context)?;
            scaled(&summed)?
        }
        Shading::Magnitude => {
            let largest = raw.f_abs().and_then(|a| a.f_amax([0i64, 1].as_slice(), false)).context(context)?;
            scaled(&largest)?
        }
    };
    let size = plane.size();
    let values =
        Vec::<f32>::try_from(&plane.f_contiguous().and_then(|p| p.f_view([-1])).context(context)?).context(context)?;
    Ok(DisplayMap { width: size[1] as usize, height: size[0] as usize, values, shading })
}

/// A CAM (`1×1×h×w`) as pytorch-grad-cam 1.5.7 returns it for an `height`×`width` input
/// (`H×W`): `scale_cam_image` at the layer's size with the resize, then once more in
/// `aggregate_multi_layers`: x − min, then ÷ (1e-7 + max), each time.
pub fn cam_display(raw: &Tensor, height: i64, width: i64) -> Result<Tensor> {
    let normalise = |t: &Tensor| -> Result<Tensor, tch::TchError> {
        let shifted = t.f_sub(&t.f_min()?)?;
        shifted.f_div(&shifted.f_max()?.f_add_scalar(1e-7)?)
    };
    let size = raw.size();
    let &[1, 1, _, _] = size.as_slice() else {
        return Err(Error::Input(format!("a CAM is 1×1×h×w, got {size:?}")));
    };
    normalise(&raw.f_to_kind(Kind::Float).context(|| "CAM".into())?)
        .and_then(|m| m.f_upsample_bilinear2d([height, width], false, None, None))
        .and_then(|m| normalise(&m))
        .and_then(|m| m.f_view([height, width]))
        .context(|| "showing a CAM".into())
}

/// `values / t` clipped to [−1, 1], where t is captum's `_cumulative_sum_threshold` of the
/// magnitudes at 98%.
fn scaled(values: &Tensor) -> Result<Tensor> {
    let magnitudes = values
        .f_abs()
        .and_then(|m| m.f_contiguous())
        .and_then(|m| m.f_view([-1]))
        .and_then(|m| Vec::<f32>::try_from(&m))
        .context(|| "scaling a map".into())?;
    let threshold = cumulative_threshold(magnitudes, 98.0);
    let scale = if threshold > 0.0 { threshold } else { 1.0 };
    values.f_div_scalar(f64::from(scale)).and_then(|v| v.f_clamp(-1.0, 1.0)).context(|| "scaling a map".into())
}

/// The smallest of the sorted `values` at which their running sum reaches `percentile`% of
/// the total (captum's `_cumulative_sum_threshold`).
pub fn cumulative_threshold(mut values: Vec<f32>, percentile: f64) -> f32 {
    values.sort_unstable_by(f32::total_cmp);
    let total: f64 = values.iter().map(|&v| f64::from(v)).sum();
    let mut running = 0.0;
    for &v in &values {
        running += f64::from(v);
        if running >= total * 0.01 * percentile {
            return v;
        }
    }
    values.last().copied().unwrap_or(0.0)
}

/// `map` over `image` (the input as the network saw it), each pixel blended with `colour(v)`:
/// at `opacity` for a CAM, at `opacity · |v|` otherwise. The map is sampled at the nearest
/// position where the sizes differ.
pub fn overlay(image: &RgbImage, map: &DisplayMap, opacity: f32, colour: &dyn Fn(f32) -> [u8; 3]) -> RgbImage {
    let (w, h) = image.dimensions();
    RgbImage::from_fn(w, h, |x, y| {
        let mx = ((x as usize * map.width) / w as usize).min(map.width.saturating_sub(1));
        let my = ((y as usize * map.height) / h as usize).min(map.height.saturating_sub(1));
        let v = map.values.get(my * map.width + mx).copied().unwrap_or(0.0);
        let alpha = match map.shading {
            Shading::Cam => opacity,
            Shading::Magnitude | Shading::Signed => opacity * v.abs(),
        }
        .clamp(0.0, 1.0);
        let c = colour(v);
        let p = image.get_pixel(x, y).0;
        image::Rgb(std::array::from_fn(|i| {
            (f32::from(p[i]) * (1.0 - alpha) + f32::from(c[i]) * alpha).round().clamp(0.0, 255.0) as u8
        }))
    })
}
