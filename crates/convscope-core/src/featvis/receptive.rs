//! Receptive fields: which input pixels a node's output at a position can see, per axis as
//! the usual recurrence gives it (a layer of kernel k, dilation d, stride s and padding p
//! turns size r, jump j and first centre c into r + (k_eff − 1)·j, j·s and
//! c + ((k_eff − 1)/2 − p)·j, with k_eff = d(k − 1) + 1). Where paths meet (a residual sum, a
//! concatenation) the field is the widest of theirs; a squeeze-and-excitation gate's global
//! pooling is left out (it scales channels, it does not move the field); after a global
//! (adaptive) pooling every position sees the whole image.

use crate::graph::{Graph, Op};

/// One node's field, `[y, x]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Field {
    /// Input pixels one output position sees (before the image's edges cut it).
    pub size: [i64; 2],
    /// Input pixels between neighbouring output positions.
    pub jump: [i64; 2],
    /// The input coordinate of output position 0's centre (pixel i's centre is i).
    pub start: [f64; 2],
    /// The whole image, whatever the position (after a global pooling).
    pub global: bool,
}

impl Field {
    const INPUT: Field = Field { size: [1, 1], jump: [1, 1], start: [0.0, 0.0], global: false };

    fn window(self, kernel: [i64; 2], stride: [i64; 2], padding: [i64; 2], dilation: [i64; 2]) -> Field {
        let mut out = self;
        for a in 0..2 {
            let k = dilation[a] * (kernel[a] - 1) + 1;
            out.size[a] = self.size[a] + (k - 1) * self.jump[a];
            out.start[a] = self.start[a] + ((k - 1) as f64 / 2.0 - padding[a] as f64) * self.jump[a] as f64;
            out.jump[a] = self.jump[a] * stride[a];
        }
        out
    }

    fn union(self, other: Field) -> Field {
        let mut out = self;
        for a in 0..2 {
            let lo = (self.start[a] - (self.size[a] - 1) as f64 / 2.0)
                .min(other.start[a] - (other.size[a] - 1) as f64 / 2.0);
            let hi = (self.start[a] + (self.size[a] - 1) as f64 / 2.0)
                .max(other.start[a] + (other.size[a] - 1) as f64 / 2.0);
            out.size[a] = (hi - lo).round() as i64 + 1;
            out.start[a] = (lo + hi) / 2.0;
            out.jump[a] = self.jump[a].max(other.jump[a]);
        }
        out.global = self.global || other.global;
        out
    }

    /// The input pixels output position `[y, x]` sees, cut to an `[h, w]` image:
    /// `[x0, y0, x1, y1]`, inclusive.
    pub fn crop(&self, position: [i64; 2], image: [i64; 2]) -> [i64; 4] {
        if self.global {
            return [0, 0, image[1] - 1, image[0] - 1];
        }
        let span = |a: usize| {
            let centre = self.start[a] + (position[a] * self.jump[a]) as f64;
            let half = (self.size[a] - 1) as f64 / 2.0;
            let lo = (centre - half).ceil().max(0.0) as i64;
            let hi = ((centre + half).floor() as i64).min(image[a] - 1);
            (lo, hi.max(lo))
        };
        let ((y0, y1), (x0, x1)) = (span(0), span(1));
        [x0, y0, x1, y1]
    }
}

/// Every node's field; `None` for flat outputs (after a flatten or a linear layer).
pub fn fields(graph: &Graph) -> Vec<Option<Field>> {
    let mut out: Vec<Option<Field>> = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let input = |i: usize| node.inputs.get(i).and_then(|e| out.get(e.from).copied().flatten());
        let field = match &node.op {
            Op::Input { .. } => Some(Field::INPUT),
            Op::Conv2d(c) => input(0).map(|f| f.window(c.kernel, c.stride, c.padding, c.dilation)),
            Op::MaxPool2d(p) | Op::AvgPool2d(p) => input(0).map(|f| f.window(p.kernel, p.stride, p.padding, [1, 1])),
            Op::ZeroPad { pad } => input(0).map(|f| f.window([1, 1], [1, 1], [pad[2], pad[0]], [1, 1])),
            Op::AdaptiveAvgPool2d { .. } => input(0).map(|f| Field { global: true, ..f }),
            Op::Linear { .. } | Op::Flatten => None,
            // The gate (inputs[1]) scales channels; the field is the feature map's.
            Op::Scale => input(0),
            Op::Add | Op::ScaledAdd { .. } | Op::Concat => {
                let mut fields = (0..node.inputs.len()).filter_map(input);
                fields.next().map(|first| fields.fold(first, Field::union))
            }
            Op::BatchNorm2d { .. }
            | Op::Activation(_)
            | Op::Dropout { .. }
            | Op::StochasticDepth { .. }
            | Op::ChannelShuffle { .. }
            | Op::ChannelSlice { .. }
            | Op::LocalResponseNorm { .. }
            | Op::ChannelAffine { .. } => input(0),
        };
        out.push(field);
    }
    out
}
