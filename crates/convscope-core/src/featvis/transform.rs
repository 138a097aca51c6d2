//! Lucid's transformation robustness as torch-lucent 0.1.8 applies it
//! (`lucent.optvis.transform.standard_transforms`): pad 12 with grey, jitter 8, scale
//! 0.9–1.1, rotate ±10°, jitter 4. The jitters and the rotation are kornia 0.4.1's
//! `translate` and `warp_affine`, computed here with the same float32 operations (the
//! normalisation matrices and their inverses included), so that a warp equals theirs.

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::error::{Result, TorchContext};
use crate::train::SplitMix64;

/// Lucent's scales: `1 + (i − 5)/50` for i in 0..11.
pub fn scales() -> [f64; 11] {
    std::array::from_fn(|i| 1.0 + (i as f64 - 5.0) / 50.0)
}

/// Lucent's angles in degrees: −10..=10, with 0 five times more.
pub fn angles() -> Vec<i64> {
    (-10..=10).chain(std::iter::repeat_n(0, 5)).collect()
}

/// One step's draws.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Draws {
    /// Jitter 8's shift (dx, dy), each in 0..8 (Lucent shifts right and down only).
    pub jitter8: (i64, i64),
    pub scale: f64,
    pub angle: i64,
    /// Jitter 4's shift, each in 0..4.
    pub jitter4: (i64, i64),
}

impl Draws {
    /// Draws as Lucent does (uniform choices from its lists) from `rng`.
    pub fn draw(rng: &mut SplitMix64) -> Self {
        let mut below = |n: usize| rng.below(n as u64) as usize;
        let jitter8 = (below(8) as i64, below(8) as i64);
        let scale = scales()[below(11)];
        let angles = angles();
        let angle = angles[below(angles.len())];
        let jitter4 = (below(4) as i64, below(4) as i64);
        Draws { jitter8, scale, angle, jitter4 }
    }
}

/// `F.pad(x, [w] * 4, mode="constant", value)`.
pub fn pad(x: &Tensor, w: i64, value: f64) -> Result<Tensor> {
    x.f_pad([w, w, w, w], "constant", value).context(|| format!("padding by {w}"))
}

fn matrix(values: &[f32], rows: i64, device: Device) -> Result<Tensor> {
    Tensor::f_from_slice(values)
        .and_then(|t| t.f_reshape([1, rows, 3]))
        .and_then(|t| t.f_to_device(device))
        .context(|| "a warp matrix".into())
}

/// kornia's `normal_transform_pixel(h, w)`: pixels to [−1, 1], in float32.
fn normal_transform_pixel(h: i64, w: i64, device: Device) -> Result<Tensor> {
    let sx = 2.0f32 / (w as f32 - 1.0);
    let sy = 2.0f32 / (h as f32 - 1.0);
    matrix(&[sx, 0.0, -1.0, 0.0, sy, -1.0, 0.0, 0.0, 1.0], 3, device)
}

/// kornia 0.4.1's `warp_affine(x, m, (h, w))` for a `1×2×3` (or `B×2×3`) pixel matrix:
/// bilinear, zeros outside, align_corners=False, the output as large as the input.
fn warp_affine(x: &Tensor, m: &Tensor) -> Result<Tensor> {
    let size = x.size();
    let (b, c, h, w) = (size[0], size[1], size[2], size[3]);
    let device = x.device();
    let norm = normal_transform_pixel(h, w, device)?;
    let last_one = matrix(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], 3, device)?;
    (|| {
        // kornia's convert_affinematrix_to_homography: a zero row, then 1 added at the corner.
        let m3 = m.f_expand([b, 2, 3], false)?.f_pad([0, 0, 0, 1], "constant", 0.0)?.f_add(&last_one)?;
        let norm_inverse = norm.f_inverse()?;
        let dst_norm_trans_src_norm = norm.f_matmul(&m3.f_matmul(&norm_inverse)?)?;
        let src_norm_trans_dst_norm = dst_norm_trans_src_norm.f_inverse()?;
        let theta = src_norm_trans_dst_norm.f_narrow(1, 0, 2)?;
        let grid = Tensor::f_affine_grid_generator(&theta, [b, c, h, w], false)?;
        // grid_sampler: 0 = bilinear, 0 = zeros.
        x.f_grid_sampler(&grid, 0, 0, false)
    })()
    .context(|| "an affine warp".into())
}

/// kornia's `translate(x, [[dx, dy]])`: Lucent's jitter.
pub fn translate(x: &Tensor, dx: i64, dy: i64) -> Result<Tensor> {
    let m = matrix(&[1.0, 0.0, dx as f32, 0.0, 1.0, dy as f32], 2, x.device())?;
    warp_affine(x, &m)
}

/// Lucent's `random_scale` with the scale drawn: bilinear resize (align_corners=True) to
/// `ceil(scale · side)`, then zero padding back where it shrank (on Lucent's sides:
/// `[pad_y, pad_x] * 2`).
pub fn scale(x: &Tensor, scale: f64) -> Result<Tensor> {
    let size = x.size();
    let (h, w) = (size[2], size[3]);
    let sh = (scale * h as f64).ceil() as i64;
    let sw = (scale * w as f64).ceil() as i64;
    let pad_x = (((w - sw) as f64) / 2.0).ceil().max(0.0) as i64;
    let pad_y = (((h - sh) as f64) / 2.0).ceil().max(0.0) as i64;
    x.f_upsample_bilinear2d([sh, sw], true, None, None)
        .and_then(|t| t.f_pad([pad_y, pad_x, pad_y, pad_x], "constant", 0.0))
        .context(|| format!("scaling by {scale}"))
}

/// Lucent's `random_rotate` with the angle drawn (degrees, counter-clockwise): kornia's
/// `get_rotation_matrix2d` about the image's centre, then `warp_affine`.
pub fn rotate(x: &Tensor, angle_degrees: i64) -> Result<Tensor> {
    let size = x.size();
    let (h, w) = (size[2], size[3]);
    let device = x.device();
    let m = (|| {
        // kornia.constants.pi, a float32 tensor; deg2rad multiplies, then divides by 180.
        let pi = Tensor::f_from_slice(&[std::f64::consts::PI as f32])?;
        let radians = Tensor::f_from_slice(&[angle_degrees as f32])?.f_mul(&pi)?.f_div_scalar(180.0)?;
        let cos = radians.f_cos()?;
        let sin = radians.f_sin()?;
        let x0 = Tensor::f_from_slice(&[(w as f32 - 1.0) / 2.0])?;
        let y0 = Tensor::f_from_slice(&[(h as f32 - 1.0) / 2.0])?;
        let one_minus_cos = cos.f_neg()?.f_add_scalar(1.0)?;
        let tx = one_minus_cos.f_mul(&x0)?.f_sub(&sin.f_mul(&y0)?)?;
        let ty = sin.f_mul(&x0)?.f_add(&one_minus_cos.f_mul(&y0)?)?;
        let row0 = Tensor::f_cat(&[&cos, &sin, &tx], 0)?;
        let row1 = Tensor::f_cat(&[&sin.f_neg()?, &cos, &ty], 0)?;
        Tensor::f_stack(&[row0, row1], 0)?.f_unsqueeze(0)?.f_to_device(device)
    })()
    .context(|| format!("the rotation by {angle_degrees}°"))?;
    warp_affine(x, &m)
}

/// The five in Lucent's order.
pub fn standard(x: &Tensor, draws: &Draws) -> Result<Tensor> {
    let x = pad(x, 12, 0.5)?;
    let x = translate(&x, draws.jitter8.0, draws.jitter8.1)?;
    let x = scale(&x, draws.scale)?;
    let x = rotate(&x, draws.angle)?;
    translate(&x, draws.jitter4.0, draws.jitter4.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_in_lucents_ranges_and_follow_the_seed() {
        let mut a = SplitMix64::new(3);
        let mut b = SplitMix64::new(3);
        let mut c = SplitMix64::new(4);
        let first: Vec<_> = (0..50).map(|_| Draws::draw(&mut a)).collect();
        let again: Vec<_> = (0..50).map(|_| Draws::draw(&mut b)).collect();
        let other: Vec<_> = (0..50).map(|_| Draws::draw(&mut c)).collect();
        assert_eq!(first, again);
        assert_ne!(first, other);
        for d in &first {
            assert!((0..8).contains(&d.jitter8.0) && (0..8).contains(&d.jitter8.1));
            assert!((0..4).contains(&d.jitter4.0) && (0..4).contains(&d.jitter4.1));
            assert!((-10..=10).contains(&d.angle));
            assert!((0.899..=1.101).contains(&d.scale));
        }
    }
}
