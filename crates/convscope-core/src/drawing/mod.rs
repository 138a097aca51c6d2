//! LeNet live: a digit drawn on a 28×28 grid, moved about, and read by LeNet-5 as it is drawn.
//!
//! - `Drawing`: the canvas, anti-aliased strokes (ink or eraser), clear and undo.
//! - `Transform` and `digit_input`: the drawn digit, preprocessed as `convscope classify`
//!   preprocesses a digit image (`preprocess::digit_pixels`), then shifted, rotated and scaled
//!   in the 32×32 field LeNet-5 sees.
//! - `held_out` and `mistakes`: the MNIST digits `convscope train` never saw, and those the
//!   model gets wrong.
//! - `worker`: the thread that runs LeNet-5 on each drawing and trains it, beside the
//!   explorer's model worker.

pub mod worker;

use tch::Tensor;

use crate::error::{Result, TorchContext};
use crate::executor::{Model, RunOptions};
use crate::preprocess::{MNIST_MEAN, MNIST_STD, digit_from_28, digit_pixels};
use crate::train::{self, Digits};

/// The side of the grid a digit is drawn on: MNIST's.
pub const GRID: usize = 28;
/// Half a stroke's width, in grid pixels. Strokes drawn to fill the grid shrink to MNIST's
/// 20-pixel box by about 0.75, which leaves them 2 to 3 pixels wide, as MNIST's are.
pub const STROKE_RADIUS: f32 = 1.5;

/// The canvas: ink in `0..=1` per grid pixel, white on black like MNIST.
#[derive(Clone, Debug, PartialEq)]
pub struct Drawing {
    ink: Vec<f32>,
    /// The canvas before each change that can be undone (a stroke, a clear, a sample).
    undo: Vec<Vec<f32>>,
    /// The last point of the stroke under way, and whether it erases.
    pen: Option<([f32; 2], bool)>,
}

impl Default for Drawing {
    fn default() -> Self {
        Self { ink: vec![0.0; GRID * GRID], undo: Vec::new(), pen: None }
    }
}

/// At most this many changes can be undone.
const UNDO_DEPTH: usize = 100;

impl Drawing {
    /// Starts a stroke at `point` (grid coordinates, `0.0..28.0`), inking or erasing a dot.
    pub fn begin_stroke(&mut self, point: [f32; 2], erase: bool) {
        self.remember();
        self.pen = Some((point, erase));
        self.segment(point, point, erase);
    }

    /// Carries the stroke under way on to `point`; without one, starts it.
    pub fn extend_stroke(&mut self, point: [f32; 2]) {
        match self.pen {
            Some((last, erase)) => {
                self.segment(last, point, erase);
                self.pen = Some((point, erase));
            }
            None => self.begin_stroke(point, false),
        }
    }

    pub fn end_stroke(&mut self) {
        self.pen = None;
    }

    pub fn drawing_stroke(&self) -> bool {
        self.pen.is_some()
    }

    /// One whole stroke through `points`.
    pub fn stroke(&mut self, points: &[[f32; 2]], erase: bool) {
        let Some((&first, rest)) = points.split_first() else { return };
        self.begin_stroke(first, erase);
        for &p in rest {
            self.extend_stroke(p);
        }
        self.end_stroke();
    }

    pub fn clear(&mut self) {
        if !self.is_empty() {
            self.remember();
            self.ink.iter_mut().for_each(|v| *v = 0.0);
        }
        self.pen = None;
    }

    /// Puts back the canvas as it was before the last change; false when there is none.
    pub fn undo(&mut self) -> bool {
        self.pen = None;
        match self.undo.pop() {
            Some(previous) => {
                self.ink = previous;
                true
            }
            None => false,
        }
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Replaces the canvas with a 28×28 digit (an MNIST sample), undoably.
    pub fn set_pixels(&mut self, pixels: &[u8]) {
        self.remember();
        self.pen = None;
        for (v, &p) in self.ink.iter_mut().zip(pixels) {
            *v = f32::from(p) / 255.0;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ink.iter().all(|&v| v == 0.0)
    }

    /// The canvas as 28×28 grey bytes, white on black: what a PNG of it holds.
    pub fn pixels(&self) -> Vec<u8> {
        self.ink.iter().map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect()
    }

    fn remember(&mut self) {
        if self.undo.len() == UNDO_DEPTH {
            self.undo.remove(0);
        }
        self.undo.push(self.ink.clone());
    }

    /// Inks (or erases) the capsule of radius `STROKE_RADIUS` around the segment `a`–`b`,
    /// each pixel covered by how far its centre lies inside the edge (a one-pixel ramp).
    fn segment(&mut self, a: [f32; 2], b: [f32; 2], erase: bool) {
        let reach = STROKE_RADIUS + 1.0;
        let x0 = (a[0].min(b[0]) - reach).floor().max(0.0) as usize;
        let x1 = (a[0].max(b[0]) + reach).ceil().clamp(0.0, GRID as f32) as usize;
        let y0 = (a[1].min(b[1]) - reach).floor().max(0.0) as usize;
        let y1 = (a[1].max(b[1]) + reach).ceil().clamp(0.0, GRID as f32) as usize;
        for y in y0..y1 {
            for x in x0..x1 {
                let d = distance_to_segment([x as f32 + 0.5, y as f32 + 0.5], a, b);
                let cover = (STROKE_RADIUS + 0.5 - d).clamp(0.0, 1.0);
                let v = &mut self.ink[y * GRID + x];
                *v = if erase { v.min(1.0 - cover) } else { v.max(cover) };
            }
        }
    }
}

fn distance_to_segment(p: [f32; 2], a: [f32; 2], b: [f32; 2]) -> f32 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let length2 = dx * dx + dy * dy;
    let t = if length2 == 0.0 { 0.0 } else { (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length2).clamp(0.0, 1.0) };
    let (cx, cy) = (a[0] + t * dx - p[0], a[1] + t * dy - p[1]);
    (cx * cx + cy * cy).sqrt()
}

/// Where the digit goes in the field after preprocessing: shifted by `shift` pixels (x right,
/// y down), rotated by `rotate_deg` (clockwise on screen) and scaled by `scale`, both about
/// the field's centre.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transform {
    pub shift: [f32; 2],
    pub rotate_deg: f32,
    pub scale: f32,
}

impl Default for Transform {
    fn default() -> Self {
        Self { shift: [0.0, 0.0], rotate_deg: 0.0, scale: 1.0 }
    }
}

impl Transform {
    pub fn is_identity(&self) -> bool {
        *self == Self::default()
    }

    pub fn shifted(self, x: f32) -> Self {
        Self { shift: [x, self.shift[1]], ..self }
    }
}

/// A drawn 28×28 canvas (white on black) as LeNet's `1×1×size×size` input: exactly the tensor
/// `convscope classify` makes from the canvas saved as a PNG, then moved by `transform`.
pub fn drawn_input(canvas: &[u8], transform: &Transform, size: u32) -> Result<Tensor> {
    let grey = image::GrayImage::from_raw(GRID as u32, GRID as u32, canvas.to_vec())
        .ok_or_else(|| crate::Error::Input(format!("a drawing is {GRID}×{GRID} bytes, not {}", canvas.len())))?;
    let pixels = digit_pixels(&image::DynamicImage::ImageLuma8(grey));
    digit_input(&pixels, transform, size)
}

/// A preprocessed 28×28 digit padded to `size` (at least 28) and moved by `transform`,
/// sampled bilinearly with black outside. The identity, and any shift by whole pixels, give
/// `digit_from_28`'s values exactly (moved).
pub fn digit_input(pixels: &[u8], transform: &Transform, size: u32) -> Result<Tensor> {
    if transform.is_identity() {
        return digit_from_28(pixels, size);
    }
    let side = size.max(GRID as u32) as usize;
    let pad = (side - GRID) as f32 / 2.0;
    let centre = side as f32 / 2.0;
    let (sin, cos) = transform.rotate_deg.to_radians().sin_cos();
    let scale = if transform.scale.is_finite() && transform.scale > 1e-3 { transform.scale } else { 1.0 };
    let source = |x: i64, y: i64| -> f32 {
        if (0..GRID as i64).contains(&x) && (0..GRID as i64).contains(&y) {
            f32::from(pixels[y as usize * GRID + x as usize])
        } else {
            0.0
        }
    };
    let mut data = vec![0f32; side * side];
    for (i, value) in data.iter_mut().enumerate() {
        let (ox, oy) = ((i % side) as f32 + 0.5, (i / side) as f32 + 0.5);
        // The output pixel's centre taken back through the shift, the rotation and the scale.
        let (dx, dy) = (ox - centre - transform.shift[0], oy - centre - transform.shift[1]);
        let (rx, ry) = ((cos * dx + sin * dy) / scale, (-sin * dx + cos * dy) / scale);
        // In the 28×28 source, where pixel (x, y) has its centre at (x + 0.5, y + 0.5).
        let (sx, sy) = (rx + centre - pad - 0.5, ry + centre - pad - 0.5);
        let (fx, fy) = (sx.floor(), sy.floor());
        let (tx, ty) = (sx - fx, sy - fy);
        let (x, y) = (fx as i64, fy as i64);
        let v = if tx == 0.0 && ty == 0.0 {
            source(x, y)
        } else {
            (1.0 - ty) * ((1.0 - tx) * source(x, y) + tx * source(x + 1, y))
                + ty * ((1.0 - tx) * source(x, y + 1) + tx * source(x + 1, y + 1))
        };
        *value = (v / 255.0 - MNIST_MEAN) / MNIST_STD;
    }
    Tensor::f_from_slice(&data)
        .and_then(|t| t.f_view_([1, 1, side as i64, side as i64]))
        .context(|| "building the moved digit".into())
}

/// The digits `convscope train` holds out with this seed (its default: 1998), in its order.
pub fn held_out(digits: &Digits, seed: u64) -> Vec<usize> {
    train::split(digits, seed).1
}

/// A held-out digit the model reads wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct Mistake {
    /// Its row in the digits file.
    pub index: usize,
    pub label: i64,
    pub predicted: i64,
    /// The probability given to `predicted`.
    pub probability: f64,
}

/// The digits at `indices` that the model gets wrong, in the order given, read through the
/// same batches `train::accuracy` reads them through.
pub fn mistakes(model: &Model, digits: &Digits, indices: &[usize]) -> Result<Vec<Mistake>> {
    let mut wrong = Vec::new();
    for chunk in indices.chunks(500) {
        let (x, _) = train::batch(digits, chunk)?;
        let logits = model.forward(&x, &RunOptions::default())?;
        let (probability, predicted) = logits
            .f_softmax(-1, tch::Kind::Float)
            .and_then(|p| p.f_max_dim(-1, false))
            .context(|| "reading the predictions".into())?;
        let predicted = Vec::<i64>::try_from(&predicted).context(|| "reading the predictions".into())?;
        let probability = Vec::<f32>::try_from(&probability).context(|| "reading the predictions".into())?;
        for ((&index, &p), &q) in chunk.iter().zip(&predicted).zip(&probability) {
            if p != digits.labels[index] {
                wrong.push(Mistake { index, label: digits.labels[index], predicted: p, probability: f64::from(q) });
            }
        }
    }
    Ok(wrong)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strokes_are_anti_aliased_and_undoable() {
        let mut drawing = Drawing::default();
        assert!(drawing.is_empty() && !drawing.can_undo());
        drawing.stroke(&[[14.0, 4.0], [14.0, 24.0]], false);
        let pixels = drawing.pixels();
        // Full ink on the line, a ramp at its edge, nothing far from it.
        assert_eq!(pixels[14 * GRID + 13], 255);
        assert!((1..255).contains(&pixels[14 * GRID + 12]), "{}", pixels[14 * GRID + 12]);
        assert_eq!(pixels[14 * GRID + 5], 0);
        drawing.stroke(&[[10.0, 14.0], [18.0, 14.0]], true);
        assert_eq!(drawing.pixels()[14 * GRID + 13], 0, "the eraser took the ink away");
        assert!(drawing.undo());
        assert_eq!(drawing.pixels(), pixels);
        drawing.clear();
        assert!(drawing.is_empty());
        assert!(drawing.undo());
        assert_eq!(drawing.pixels(), pixels);
        assert!(drawing.undo() && drawing.is_empty() && !drawing.undo());
    }

    #[test]
    fn whole_pixel_shifts_move_the_tensor_and_nothing_else() {
        let pixels: Vec<u8> = (0..GRID * GRID).map(|i| ((i * 37) % 256) as u8).collect();
        let still = digit_from_28(&pixels, 32).unwrap();
        let still = Vec::<f32>::try_from(still.flatten(0, -1)).unwrap();
        assert_eq!(
            Vec::<f32>::try_from(digit_input(&pixels, &Transform::default(), 32).unwrap().flatten(0, -1)).unwrap(),
            still
        );
        let moved = Transform { shift: [3.0, -2.0], ..Transform::default() };
        let moved = Vec::<f32>::try_from(digit_input(&pixels, &moved, 32).unwrap().flatten(0, -1)).unwrap();
        let background = (0.0 - MNIST_MEAN) / MNIST_STD;
        for y in 0..32 {
            for x in 0..32 {
                let (sx, sy) = (x as i64 - 3, y as i64 + 2);
                let expected = if (0..32).contains(&sx) && (0..32).contains(&sy) {
                    still[(sy * 32 + sx) as usize]
                } else {
                    background
                };
                assert_eq!(moved[y * 32 + x], expected, "({x}, {y})");
            }
        }
        // A quarter turn about the centre takes column x to row x.
        let turned = Transform { rotate_deg: 90.0, ..Transform::default() };
        let turned = Vec::<f32>::try_from(digit_input(&pixels, &turned, 32).unwrap().flatten(0, -1)).unwrap();
        let mut close = 0;
        for y in 0..32 {
            for x in 0..32 {
                // Clockwise on screen (y down): (x, y) about the centre goes to (−y, x).
                let (sx, sy) = (y, 31 - x);
                close += usize::from((turned[y * 32 + x] - still[sy * 32 + sx]).abs() < 1e-3);
            }
        }
        assert_eq!(close, 32 * 32);
    }
}
