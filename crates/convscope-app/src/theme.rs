//! Every colour the app paints, in one place, so the light and dark themes stay legible
//! and a colour means the same thing in the picker, the plots and the diagram.

use egui::Color32;

use convscope_core::graph::{Activation, Op};

/// Probability bars and the current gradient curve.
pub const ACCENT: Color32 = Color32::from_rgb(0x3b, 0x82, 0xc4);
/// Parameter-gradient norms, set apart from the node curve.
pub const SECONDARY: Color32 = Color32::from_rgb(0xe0, 0x8a, 0x2c);
/// The curve before the last switch, kept as a ghost.
pub const GHOST: Color32 = Color32::from_rgba_premultiplied(0x70, 0x70, 0x70, 0x90);
/// The node or channel being shown.
pub const HIGHLIGHT: Color32 = Color32::from_rgb(0xf2, 0xc9, 0x4c);
/// A residual shortcut switched off.
pub const SKIP_OFF: Color32 = Color32::from_rgb(0xd0, 0x3c, 0x3c);
/// A residual shortcut in use.
pub const SKIP_ON: Color32 = Color32::from_rgb(0x4c, 0xa8, 0x6a);
/// Where a file may be dropped.
pub const DROP_OVERLAY: Color32 = Color32::from_rgba_premultiplied(0x20, 0x40, 0x70, 0xb0);
pub const DROP_TEXT: Color32 = Color32::WHITE;

/// Between the maps of an exported feature-map grid.
pub const EXPORT_GAP: Color32 = Color32::from_rgb(0x20, 0x20, 0x20);

/// Weights state on the card.
pub const WEIGHTS_PRETRAINED: Color32 = Color32::from_rgb(0x4c, 0xa8, 0x6a);
pub const WEIGHTS_TRAINED: Color32 = Color32::from_rgb(0x3b, 0x82, 0xc4);
pub const WEIGHTS_RANDOM: Color32 = Color32::from_rgb(0xd0, 0x8c, 0x2c);

/// Op kinds as the diagram and its legend colour them.
pub fn op_color(op: &Op) -> Color32 {
    match op {
        Op::Input { .. } => Color32::from_rgb(0x9e, 0x9e, 0x9e),
        Op::Conv2d(c) if c.is_depthwise() => Color32::from_rgb(0x26, 0xa6, 0x9a),
        Op::Conv2d(c) if c.is_pointwise() => Color32::from_rgb(0x5c, 0x9b, 0xd6),
        Op::Conv2d(_) => Color32::from_rgb(0x3f, 0x6f, 0xc4),
        Op::BatchNorm2d { .. } | Op::LocalResponseNorm { .. } | Op::ChannelAffine { .. } => {
            Color32::from_rgb(0x9c, 0x7c, 0xc8)
        }
        Op::Linear { .. } => Color32::from_rgb(0xc2, 0x5b, 0x8c),
        Op::Activation(Activation::Sigmoid | Activation::HardSigmoid) | Op::Scale => {
            Color32::from_rgb(0xe0, 0x6c, 0x9f)
        }
        Op::Activation(_) => Color32::from_rgb(0x7c, 0xb3, 0x42),
        Op::MaxPool2d(_) | Op::AvgPool2d(_) | Op::AdaptiveAvgPool2d { .. } => Color32::from_rgb(0xe5, 0xa0, 0x3a),
        Op::Add | Op::ScaledAdd { .. } => SKIP_ON,
        Op::Concat => Color32::from_rgb(0xd4, 0x7a, 0x3a),
        Op::ChannelShuffle { .. } | Op::ChannelSlice { .. } => Color32::from_rgb(0x8d, 0x6e, 0x63),
        Op::Dropout { .. } | Op::StochasticDepth { .. } | Op::Flatten | Op::ZeroPad { .. } => {
            Color32::from_rgb(0x78, 0x90, 0x9c)
        }
    }
}

/// The legend: one entry per colour `op_color` gives.
pub fn legend() -> Vec<(&'static str, Color32)> {
    use convscope_core::graph::{Conv2d, Pool2d};
    vec![
        ("convolution", op_color(&Op::Conv2d(Conv2d::new(8, 8, 3)))),
        ("pointwise 1×1", op_color(&Op::Conv2d(Conv2d::new(8, 8, 1)))),
        ("depthwise", op_color(&Op::Conv2d(Conv2d::new(8, 8, 3).groups(8)))),
        ("normalisation", op_color(&Op::BatchNorm2d { channels: 1, eps: 0.0, momentum: 0.0 })),
        ("activation", op_color(&Op::Activation(Activation::Relu))),
        ("gate (SE)", op_color(&Op::Scale)),
        ("pooling", op_color(&Op::MaxPool2d(Pool2d::new(2, 2)))),
        ("residual add", op_color(&Op::Add)),
        ("concatenation", op_color(&Op::Concat)),
        ("shuffle / split", op_color(&Op::ChannelShuffle { groups: 2 })),
        ("linear", op_color(&Op::Linear { in_features: 1, out_features: 1, bias: true })),
        ("other", op_color(&Op::Flatten)),
    ]
}

/// Text drawn over a colour: black on light fills, white on dark ones.
pub fn text_on(fill: Color32) -> Color32 {
    let luma = 0.299 * f32::from(fill.r()) + 0.587 * f32::from(fill.g()) + 0.114 * f32::from(fill.b());
    if luma > 140.0 { Color32::BLACK } else { Color32::WHITE }
}

/// Matplotlib's viridis, sampled at 9 points and interpolated linearly: perceptually
/// uniform and readable by colour-blind users, unlike a rainbow.
const VIRIDIS: [[u8; 3]; 9] = [
    [68, 1, 84],
    [71, 44, 122],
    [59, 81, 139],
    [44, 113, 142],
    [33, 144, 141],
    [39, 173, 129],
    [92, 200, 99],
    [170, 220, 50],
    [253, 231, 37],
];

/// Viridis at `t` in 0..=1 (clamped; NaN maps to the low end).
pub fn viridis(t: f32) -> Color32 {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let scaled = t * (VIRIDIS.len() - 1) as f32;
    let i = (scaled.floor() as usize).min(VIRIDIS.len() - 2);
    let f = scaled - i as f32;
    let lerp = |a: u8, b: u8| (f32::from(a) + (f32::from(b) - f32::from(a)) * f).round() as u8;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    Color32::from_rgb(lerp(a[0], b[0]), lerp(a[1], b[1]), lerp(a[2], b[2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_ends_are_matplotlibs() {
        assert_eq!(viridis(0.0), Color32::from_rgb(68, 1, 84));
        assert_eq!(viridis(1.0), Color32::from_rgb(253, 231, 37));
        assert_eq!(viridis(f32::NAN), viridis(0.0));
        assert_eq!(viridis(2.0), viridis(1.0));
    }
}
