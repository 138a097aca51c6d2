//! The image as Lucid parametrises it, as torch-lucent 0.1.8 computes it
//! (`lucent.optvis.param.spatial.fft_image`, `color.to_valid_rgb`): a spectrum scaled by 1/f,
//! an inverse real FFT, colour decorrelation, a sigmoid.

use tch::{Device, Kind, Tensor};

use crate::error::{Result, TorchContext};

/// Lucid's constant: the spatial image is divided by it (a larger one saturates less).
const MAGIC: f64 = 4.0;

/// The square root of ImageNet's colour correlation (Lucid's `color_correlation_svd_sqrt`).
const COLOR_CORRELATION_SVD_SQRT: [[f32; 3]; 3] = [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]];

/// numpy's `fftfreq(n)`: `k · (1/n)` with k = 0, 1, …, (n−1)/2, −n/2, …, −1.
fn fftfreq(n: i64) -> Vec<f64> {
    let val = 1.0 / n as f64;
    let positive = (n - 1) / 2 + 1;
    (0..n).map(|i| if i < positive { i } else { i - n }).map(|k| k as f64 * val).collect()
}

/// The width of the half spectrum: one column more for an odd width, as Lucid keeps it.
pub fn spectrum_width(w: i64) -> i64 {
    if w % 2 == 1 { w / 2 + 2 } else { w / 2 + 1 }
}

/// `1 / max(|f|, 1/max(w, h))` per frequency of the half spectrum, `h × spectrum_width(w)`,
/// computed in float64 as numpy does and stored in float32 as Lucent does.
fn spectrum_scale(h: i64, w: i64) -> Vec<f32> {
    let fy = fftfreq(h);
    let fx = fftfreq(w);
    let floor = 1.0 / w.max(h) as f64;
    let wf = spectrum_width(w) as usize;
    fy.iter().flat_map(|&y| fx[..wf].iter().map(move |&x| (1.0 / (x * x + y * y).sqrt().max(floor)) as f32)).collect()
}

/// Lucent's `color_correlation_normalized`, transposed, as its matmul reads it.
fn color_matrix_transposed() -> [f32; 9] {
    let m = COLOR_CORRELATION_SVD_SQRT;
    // numpy: the norm of each column in float32, the largest of the three.
    let max_norm = (0..3)
        .map(|col| (m[0][col] * m[0][col] + m[1][col] * m[1][col] + m[2][col] * m[2][col]).sqrt())
        .fold(f32::MIN, f32::max);
    let mut t = [0.0; 9];
    for (row, values) in m.iter().enumerate() {
        for (col, v) in values.iter().enumerate() {
            t[col * 3 + row] = v / max_norm;
        }
    }
    t
}

/// The fixed parts of one parametrised image: the spectrum's scale and the colour matrix.
pub struct FftImage {
    pub batch: i64,
    pub channels: i64,
    pub h: i64,
    pub w: i64,
    scale: Tensor,
    color: Option<Tensor>,
}

impl FftImage {
    /// A batch of `channels`-channel `h × w` images on `device`; three channels are
    /// decorrelated, one is not (Lucent's `image(…, channels=1)`).
    pub fn new(batch: i64, channels: i64, h: i64, w: i64, device: Device) -> Result<Self> {
        let wf = spectrum_width(w);
        let scale = Tensor::f_from_slice(&spectrum_scale(h, w))
            .and_then(|t| t.f_reshape([1, 1, h, wf, 1]))
            .and_then(|t| t.f_to_device(device))
            .context(|| "the spectrum's scale".into())?;
        let color = (channels == 3)
            .then(|| {
                Tensor::f_from_slice(&color_matrix_transposed())
                    .and_then(|t| t.f_reshape([3, 3]))
                    .and_then(|t| t.f_to_device(device))
            })
            .transpose()
            .context(|| "the colour matrix".into())?;
        Ok(Self { batch, channels, h, w, scale, color })
    }

    /// The shape of the spectrum parameter: real and imaginary parts last.
    pub fn spectrum_shape(&self) -> [i64; 5] {
        [self.batch, self.channels, self.h, spectrum_width(self.w), 2]
    }

    /// Lucent's initial spectrum, `randn(shape) · 0.01` (the caller seeds the draw).
    pub fn random_spectrum(&self, device: Device) -> Result<Tensor> {
        Tensor::f_randn(self.spectrum_shape(), (Kind::Float, Device::Cpu))
            .and_then(|t| t.f_mul_scalar(0.01))
            .and_then(|t| t.f_to_device(device))
            .context(|| "drawing the spectrum".into())
    }

    /// The image in [0, 1], `batch × channels × h × w`, differentiable in `spectrum`.
    pub fn image(&self, spectrum: &Tensor) -> Result<Tensor> {
        let spatial = (|| {
            let scaled = self.scale.f_mul(spectrum)?.f_view_as_complex()?;
            scaled.f_fft_irfftn([self.h, self.w].as_slice(), None::<&[i64]>, "ortho")?.f_div_scalar(MAGIC)
        })()
        .context(|| "the image from its spectrum".into())?;
        let decorrelated = match &self.color {
            Some(color) => spatial
                .f_permute([0, 2, 3, 1])
                .and_then(|t| t.f_matmul(color))
                .and_then(|t| t.f_permute([0, 3, 1, 2]))
                .context(|| "decorrelating the colours".into())?,
            None => spatial,
        };
        decorrelated.f_sigmoid().context(|| "the sigmoid".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fftfreq_is_numpys() {
        assert_eq!(fftfreq(4), vec![0.0, 0.25, -0.5, -0.25]);
        let five = fftfreq(5);
        assert_eq!(five.len(), 5);
        assert_eq!(five[2], 2.0 * (1.0 / 5.0));
        assert_eq!(five[3], -2.0 * (1.0 / 5.0));
    }

    #[test]
    fn an_odd_width_keeps_one_more_column() {
        assert_eq!(spectrum_width(32), 17);
        assert_eq!(spectrum_width(29), 16);
        // The extra column is the most negative frequency, |f| = 14/29 at fy = 0.
        let scale = spectrum_scale(1, 29);
        assert_eq!(scale.len(), 16);
        assert!((scale[15] as f64 - 29.0 / 14.0).abs() < 1e-5);
        // The DC term is floored at 1/max(w, h).
        assert_eq!(scale[0], 29.0);
    }
}
