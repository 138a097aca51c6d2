//! Every colour the app paints, in one place, so the light and dark themes stay legible
//! and a colour means the same thing in the picker, the plots and the diagram.

use egui::Color32;

use convscope_core::graph::{Activation, Op};
use convscope_core::history::Family;

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
/// A warning in the text: a result that means nothing (a saturated loss).
pub const WARNING: Color32 = Color32::from_rgb(0xe0, 0x8a, 0x2c);
pub const SKIP_ON: Color32 = Color32::from_rgb(0x4c, 0xa8, 0x6a);
/// Where a file may be dropped.
pub const DROP_OVERLAY: Color32 = Color32::from_rgba_premultiplied(0x20, 0x40, 0x70, 0xb0);
pub const DROP_TEXT: Color32 = Color32::WHITE;

/// The lab's runs, in order: the curves, the table and the heatmaps agree.
const LAB_RUNS: [Color32; 4] = [
    Color32::from_rgb(0xd0, 0x5c, 0x3c),
    Color32::from_rgb(0x8c, 0x5c, 0xc8),
    Color32::from_rgb(0x3b, 0x82, 0xc4),
    Color32::from_rgb(0x4c, 0xa8, 0x6a),
];

pub fn lab_run(index: usize) -> Color32 {
    LAB_RUNS[index % LAB_RUNS.len()]
}

/// Between the maps of an exported feature-map grid.
pub const EXPORT_GAP: Color32 = Color32::from_rgb(0x20, 0x20, 0x20);

/// Weights state on the card.
pub const WEIGHTS_PRETRAINED: Color32 = Color32::from_rgb(0x4c, 0xa8, 0x6a);
pub const WEIGHTS_TRAINED: Color32 = Color32::from_rgb(0x3b, 0x82, 0xc4);
pub const WEIGHTS_RANDOM: Color32 = Color32::from_rgb(0xd0, 0x8c, 0x2c);

/// Families on the History chart: Tableau's categorical colours, legible on both themes.
pub fn family_color(family: Family) -> Color32 {
    let rgb = match family {
        Family::LeNet => 0x8c8c8c,
        Family::AlexNet => 0xd62728,
        Family::Vgg => 0x8c564b,
        Family::Inception => 0x2ca02c,
        Family::ResNet => 0x1f77b4,
        Family::InceptionResNet => 0x17becf,
        Family::SqueezeNet => 0xbcbd22,
        Family::DenseNet => 0x9467bd,
        Family::MobileNet => 0xff7f0e,
        Family::ShuffleNet => 0xe377c2,
        Family::EfficientNet => 0xe6b800,
    };
    let [_, r, g, b] = u32::to_be_bytes(rgb);
    Color32::from_rgb(r, g, b)
}

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

/// Viridis at `t` in 0..=1 (clamped; NaN maps to the low end): matplotlib's map, perceptually
/// uniform and readable by colour-blind users, unlike a rainbow. The sequential map, for
/// magnitudes and for values stretched over their own range (feature maps).
pub fn viridis(t: f32) -> Color32 {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    color32(colorous::VIRIDIS.eval_continuous(f64::from(t)))
}

/// The diverging map, for signed values whose zero means something (gradients, attributions):
/// `v` in -1..=1 (clamped; NaN maps to zero), negative blue, zero near white, positive red.
/// ColorBrewer's RdBu, run from blue to red so that more is warmer.
pub fn diverging(v: f32) -> Color32 {
    let v = if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) };
    color32(colorous::RED_BLUE.eval_continuous(f64::from((1.0 - v) / 2.0)))
}

/// A digit class's colour in the probability plot: d3's Category10, ten distinct hues.
pub fn digit_class(class: usize) -> Color32 {
    color32(colorous::CATEGORY10[class % colorous::CATEGORY10.len()])
}

/// The drawing pad's ink, `v` in 0..=1: MNIST's white on black, whatever the theme.
pub fn ink(v: f32) -> Color32 {
    let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    Color32::from_gray((v * 255.0).round() as u8)
}

fn color32(color: colorous::Color) -> Color32 {
    let [r, g, b] = color.into_array();
    Color32::from_rgb(r, g, b)
}

/// How often a spinner moves while the worker computes. egui's own spinner asks for a new
/// frame every frame; without vsync or a GPU (Xvfb, a remote desktop) each of those frames is
/// rasterised on the CPU (Mesa's llvmpipe: about 80 ms of a core for this window), taken from
/// libtorch while it works: it made the app's forward pass three times slower than the
/// engine's. Twice a second still shows the app is alive; replies repaint at once anyway.
pub const BUSY_REPAINT: std::time::Duration = std::time::Duration::from_millis(500);

/// How a reply from a worker (the model's, the pad's, the lab's) wakes the window: at once, but with a delay above zero,
/// because egui answers a zero delay with two frames ("to let things settle"). Without a GPU
/// the second is rasterised on the CPU (in a 1400×900 window under Xvfb about 10 ms of both
/// cores through OpenGL, 35 through wgpu) while the gradient pass runs beside it. Nothing of the app's waits on that frame:
/// its grids keep their sizes and a reply's frame draws all of it.
pub const REPLY_WAKE: std::time::Duration = std::time::Duration::from_micros(1);

/// egui's spinner, drawn the same way but repainted at `BUSY_REPAINT`, not at frame rate.
pub fn spinner(ui: &mut egui::Ui) -> egui::Response {
    let size = ui.style().spacing.interact_size.y;
    let (rect, response) = ui.allocate_exact_size(egui::vec2(size, size), egui::Sense::hover());
    response.widget_info(|| egui::WidgetInfo::new(egui::Role::ProgressIndicator));
    if ui.is_rect_visible(rect) {
        ui.ctx().request_repaint_after(BUSY_REPAINT);
        let radius = rect.height().min(rect.width()) * 0.5 - 2.0;
        let points = (radius.round() as u32).clamp(8, 128);
        let time = ui.input(|i| i.time);
        let start = time * std::f64::consts::TAU;
        let end = start + 240f64.to_radians() * time.sin();
        let arc: Vec<egui::Pos2> = (0..points)
            .map(|i| {
                let angle = egui::emath::lerp(start..=end, f64::from(i) / f64::from(points));
                let (sin, cos) = angle.sin_cos();
                rect.center() + radius * egui::vec2(cos as f32, sin as f32)
            })
            .collect();
        ui.painter().add(egui::Shape::line(arc, egui::Stroke::new(3.0, ui.visuals().strong_text_color())));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(rgb: u32) -> Color32 {
        let [_, r, g, b] = rgb.to_be_bytes();
        Color32::from_rgb(r, g, b)
    }

    /// The largest difference of a channel, in levels.
    fn distance(a: Color32, b: Color32) -> u8 {
        (0..3).map(|i| a.to_array()[i].abs_diff(b.to_array()[i])).max().unwrap_or(0)
    }

    #[test]
    fn viridis_is_matplotlibs() {
        // `matplotlib.colormaps["viridis"](k / 8)` for k = 0..=8 (matplotlib 3.11), as hex.
        let matplotlib = [0x440154, 0x472d7b, 0x3b528b, 0x2c728e, 0x21918c, 0x28ae80, 0x5ec962, 0xaddc30, 0xfde725];
        assert_eq!(viridis(0.0), hex(0x440154));
        assert_eq!(viridis(1.0), hex(0xfde725));
        // colorous holds matplotlib's 256 entries but evaluates them as a B-spline (as d3 does)
        // and truncates to bytes, where matplotlib takes the entry under `t`: between the ends
        // it lands up to 3 levels off (#20908c for #21918c halfway). The nine stops it replaced
        // were up to 19 levels off.
        for (k, expected) in matplotlib.into_iter().enumerate() {
            let t = k as f32 / 8.0;
            let got = viridis(t);
            assert!(distance(got, hex(expected)) <= 3, "viridis({t}) = {got:?}, matplotlib #{expected:06x}");
        }
        assert!(distance(viridis(0.5), hex(0x21918c)) <= 1);
        assert_eq!(viridis(f32::NAN), viridis(0.0));
        assert_eq!(viridis(2.0), viridis(1.0));
    }

    #[test]
    fn the_diverging_map_runs_blue_through_white_to_red() {
        // ColorBrewer's RdBu ends, darkest blue and darkest red.
        assert!(distance(diverging(-1.0), hex(0x053061)) <= 1, "{:?}", diverging(-1.0));
        assert!(distance(diverging(1.0), hex(0x67001f)) <= 1, "{:?}", diverging(1.0));
        let zero = diverging(0.0).to_array();
        assert!(zero[..3].iter().all(|&c| c >= 235), "zero is near white: {zero:?}");
        let (lo, hi) = (zero[..3].iter().min(), zero[..3].iter().max());
        assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 6), "and grey, neither side: {zero:?}");
        let [r, _, b, _] = diverging(-0.5).to_array();
        assert!(b > r, "negative is blue");
        let [r, _, b, _] = diverging(0.5).to_array();
        assert!(r > b, "positive is red");
        let luma = |v: f32| {
            let [r, g, b, _] = diverging(v).to_array();
            0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)
        };
        assert!(luma(-1.0) < luma(-0.5) && luma(-0.5) < luma(0.0), "darker away from zero, below");
        assert!(luma(1.0) < luma(0.5) && luma(0.5) < luma(0.0), "and above");
        assert_eq!(diverging(f32::NAN), diverging(0.0));
        assert_eq!(diverging(-3.0), diverging(-1.0));
    }
}
