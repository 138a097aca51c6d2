//! Feature visualisation: what a channel looks for, as the image that maximises its mean
//! activation. Lucid's recipe as torch-lucent 0.1.8 implements it, so that a notebook and
//! convscope agree on every fixed part (the featvis tests compare them with Lucent's, made by
//! tests/fixtures/make_featvis_fixtures.py):
//!
//! - `param`: the image from a spectrum (1/f scaling, inverse FFT, decorrelated colour,
//!   sigmoid);
//! - `transform`: pad 12, jitter 8, scale 0.9–1.1, rotate ±10°, jitter 4 (kornia's warps);
//! - `adam`: `torch.optim.Adam`, lr 0.05.
//!
//! Unlike Lucent, which runs the whole network and hooks the layer, each step runs only the
//! nodes the target depends on (`Model::channel_tail`) and differentiates with respect to the
//! spectrum alone, not the weights. By default (`Settings::sliced`, `Settings::fast_layout`)
//! the node's tail is computed for the optimised channels only, and on the CPU in plain
//! forward's fast layout (channels-last, batch norms folded); the reference layout on the
//! whole node is Lucent's arithmetic. The image is resized to the network's input size
//! after the transforms (Lucent's `fixed_image_size`) and normalised as the zoo preprocesses.
//!
//! `visualize` optimises a batch: one image per channel (a layer's channels together), or
//! four images of one channel kept apart by Lucid's diversity term. It reports each step and
//! a preview every few, and asks before every step whether to stop.
//!
//! The other half of what a channel does: `examples::top_examples`, the images of a set on
//! which it peaks highest, with the input pixels its peak sees (`receptive`).

pub mod adam;
pub mod examples;
pub mod param;
pub mod receptive;
pub mod transform;

use std::cell::RefCell;
use std::time::Instant;

use image::RgbImage;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::{Error, Result, TorchContext};
use crate::executor::{ChannelTail, Layout, Model, RunOptions, seeded};
use crate::graph::{Graph, NodeId};
use crate::preprocess::Preprocess;

use crate::train::SplitMix64;
use adam::Adam;
use param::FftImage;
use transform::Draws;

/// How many images a diversity run optimises together (Lucid's notebooks use four).
pub const DIVERSITY_BATCH: i64 = 4;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Objective {
    /// The channel's mean activation, maximised.
    #[default]
    Maximise,
    /// The same, minimised: what the channel responds to least ("negative").
    Minimise,
    /// A batch of `DIVERSITY_BATCH` images of one channel, each maximised, minus Lucid's
    /// diversity term (the cosine similarity of their Gram matrices at the node) × weight.
    Diversity,
}

impl Objective {
    pub const ALL: [Objective; 3] = [Objective::Maximise, Objective::Minimise, Objective::Diversity];

    pub fn id(self) -> &'static str {
        match self {
            Objective::Maximise => "positive",
            Objective::Minimise => "negative",
            Objective::Diversity => "diversity",
        }
    }

    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.id() == id)
    }
}

/// One run's settings; with the network, weights, node and channel they name a result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub steps: usize,
    /// The side of the optimised image in pixels (before the transforms and the resize).
    pub size: i64,
    pub seed: i64,
    pub lr: f64,
    pub objective: Objective,
    /// The diversity term's weight (Lucent's notebooks: 1e2).
    pub diversity_weight: f64,
    /// A preview image every this many steps (0: none but the last).
    pub preview_every: usize,
    /// On the CPU, plain forward's fast layout (`Layout::Fast`) on the way to the node: the
    /// input, activations and convolution weights channels-last, where oneDNN's convolutions
    /// and their input gradients skip their layout conversions, and each batch norm that alone
    /// reads a convolution folded into it (a pass fewer each way). The sums run in another
    /// order, so a step differs from the reference layout's by float rounding (the featvis
    /// tests bound it); off, PyTorch's own kernels, as Lucent runs them.
    pub fast_layout: bool,
    /// Maximise and minimise read one channel per image: compute the node's tail for those
    /// channels only (`Model::channel_tail`): the last convolutions give only them, and their
    /// input gradients shrink as much. The diversity term reads every channel and ignores it.
    pub sliced: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            steps: 256,
            size: 128,
            seed: 0,
            lr: 0.05,
            objective: Objective::Maximise,
            diversity_weight: 100.0,
            preview_every: 16,
            fast_layout: true,
            sliced: true,
        }
    }
}

impl Settings {
    pub fn check(&self) -> Result<()> {
        if self.steps == 0 || self.steps > 100_000 {
            return Err(Error::Input(format!("steps must be in 1..=100000, got {}", self.steps)));
        }
        if !(8..=1024).contains(&self.size) {
            return Err(Error::Input(format!("the image size must be in 8..=1024 pixels, got {}", self.size)));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::Input(format!("the learning rate must be positive, got {}", self.lr)));
        }
        if !(self.diversity_weight.is_finite() && self.diversity_weight >= 0.0) {
            return Err(Error::Input(format!("the diversity weight must be ≥ 0, got {}", self.diversity_weight)));
        }
        Ok(())
    }
}

/// After each step.
pub struct Progress<'a> {
    /// Steps done, 1..=steps.
    pub step: usize,
    pub steps: usize,
    /// The channels' mean activation this step (on the transformed images), averaged over
    /// the batch.
    pub activation: f64,
    /// The images now (`N×C×size×size` in [0, 1], on the CPU), every `preview_every` steps
    /// and after the last.
    pub preview: Option<&'a Tensor>,
}

/// What a caller hears and says: progress after every step, and whether to stop (asked
/// before every step).
pub struct Control<'a> {
    pub progress: &'a mut dyn FnMut(Progress<'_>),
    pub interrupt: &'a dyn Fn() -> bool,
}

pub struct Visualization {
    pub node: NodeId,
    /// Per image, the channel it shows.
    pub channels: Vec<i64>,
    /// `N×C×size×size` in [0, 1], on the CPU.
    pub images: Tensor,
    /// Per image, its channel's mean activation on the final image itself (resized to the
    /// input and normalised, no transform).
    pub activations: Vec<f64>,
    /// Per step, the batch's mean activation (on the transformed images).
    pub curve: Vec<f64>,
    pub seconds: f64,
}

/// Everything fixed for a run: the node, the channels, how an image becomes an input.
pub struct Pipeline<'a> {
    model: &'a Model,
    node: NodeId,
    channels: Vec<i64>,
    input_size: [i64; 2],
    mean: Tensor,
    std: Tensor,
    opts: RunOptions,
    /// The run to the node last used, and what it was made for (layout, sliced).
    tail: RefCell<Option<((Layout, bool), ChannelTail<'a>)>>,
}

impl<'a> Pipeline<'a> {
    /// Checks that `node` has a spatial output with every channel asked for.
    pub fn new(model: &'a Model, preprocess: &Preprocess, node: NodeId, channels: Vec<i64>) -> Result<Self> {
        let graph = model.graph();
        let input_size = preprocess.output_size();
        let Some(spec) = graph.nodes.get(node) else {
            return Err(Error::Input(format!("{} has no node {node}", graph.arch)));
        };
        let report = graph.infer_shapes(input_size[0], input_size[1])?;
        let shape = &report.nodes[node].shape;
        let &[node_channels, _, _] = shape.as_slice() else {
            return Err(Error::Input(format!(
                "{} gives {shape:?}, not channels × height × width: only a spatial output has channels to visualise",
                spec.name
            )));
        };
        if channels.is_empty() {
            return Err(Error::Input("no channel to visualise".into()));
        }
        if let Some(bad) = channels.iter().find(|&&c| !(0..node_channels).contains(&c)) {
            return Err(Error::Input(format!("{} has {node_channels} channels, no channel {bad}", spec.name)));
        }
        let in_channels = graph.input_channels();
        let (mean, std) = preprocess.mean_std();
        let per_channel = |v: [f32; 3]| {
            Tensor::f_from_slice(&v[..in_channels as usize])
                .and_then(|t| t.f_reshape([1, in_channels, 1, 1]))
                .and_then(|t| t.f_to_device(model.device()))
                .context(|| "the normalisation".into())
        };
        Ok(Self {
            model,
            node,
            channels,
            input_size,
            mean: per_channel(mean)?,
            std: per_channel(std)?,
            opts: RunOptions { train: false, ..RunOptions::default() },
            tail: RefCell::new(None),
        })
    }

    /// Images in [0, 1] as the network takes them: resized to its input (bilinear,
    /// align_corners=True, as Lucent's Upsample) and normalised (torchvision's Normalize).
    pub fn network_input(&self, images: &Tensor) -> Result<Tensor> {
        images
            .f_upsample_bilinear2d(self.input_size, true, None, None)
            .and_then(|t| t.f_sub(&self.mean))
            .and_then(|t| t.f_div(&self.std))
            .context(|| "the image as the network's input".into())
    }

    /// The node's output for `images`, recording autograd, and the channels it holds, in
    /// order: every channel, or with `settings.sliced` (maximise, minimise) the ones asked for.
    fn activations(&self, images: &Tensor, settings: &Settings) -> Result<(Tensor, Vec<i64>)> {
        let layout = if settings.fast_layout { Layout::Fast } else { Layout::Reference };
        let sliced = settings.sliced && settings.objective != Objective::Diversity;
        let mut slot = self.tail.borrow_mut();
        if slot.as_ref().is_none_or(|(made_for, _)| *made_for != (layout, sliced)) {
            let channels = sliced.then_some(self.channels.as_slice());
            let tail = self.model.channel_tail(self.node, channels, self.input_size, &self.opts, layout)?;
            *slot = Some(((layout, sliced), tail));
        }
        let tail = &slot.as_ref().ok_or_else(|| Error::Input("no run to the node".into()))?.1;
        let input = self.network_input(images)?;
        Ok((tail.forward_with_grad(&input)?, tail.channels().to_vec()))
    }

    /// Per image, the mean of its channel: `N` values (a diversity batch has one channel
    /// for all). `held`: the channels of `activations`, in order.
    fn channel_means(&self, activations: &Tensor, held: &[i64]) -> Result<Tensor> {
        let n = activations.size()[0];
        (0..n)
            .map(|i| {
                let c = if self.channels.len() == 1 { self.channels[0] } else { self.channels[i as usize] };
                let at =
                    held.binary_search(&c).map_err(|_| tch::TchError::Kind(format!("channel {c} not computed")))?;
                activations.f_select(0, i)?.f_select(0, at as i64)?.f_mean(Kind::Float)
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|means| Tensor::f_stack(&means, 0))
            .context(|| "the channels' means".into())
    }

    /// Per image, its channel's mean activation on the images themselves, no gradient.
    pub fn final_activations(&self, images: &Tensor) -> Result<Vec<f64>> {
        let _guard = tch::no_grad_guard();
        let input = self.network_input(images)?;
        let out = self.model.forward_to(&input, &self.opts, self.node)?;
        let every: Vec<i64> = (0..out.size().get(1).copied().unwrap_or(0)).collect();
        let means = self.channel_means(&out, &every)?;
        Vec::<f64>::try_from(&means.f_to_kind(Kind::Double).context(|| "reading the means".into())?)
            .map_err(|e| Error::torch("reading the means", e))
    }

    /// The loss Lucent minimises for `objective`, and the batch's mean activation.
    fn loss(&self, images: &Tensor, settings: &Settings) -> Result<(Tensor, f64)> {
        let (activations, held) = self.activations(images, settings)?;
        if activations.dim() != 4 {
            return Err(Error::Input(format!("the node gave {:?}, not N×C×H×W", activations.size())));
        }
        let means = self.channel_means(&activations, &held)?;
        let mean = means.f_mean(Kind::Float).context(|| "the mean activation".into())?;
        let shown = mean.f_double_value(&[]).context(|| "reading the activation".into())?;
        let loss = match settings.objective {
            // channel(layer, n, batch=i) summed over the batch: each image as if alone.
            Objective::Maximise => means.f_sum(Kind::Float).and_then(|t| t.f_neg()),
            Objective::Minimise => means.f_sum(Kind::Float),
            // Lucent's notebooks: channel(layer, n) − weight · diversity(layer), the channel's
            // mean over the whole batch.
            Objective::Diversity => diversity(&activations)
                .and_then(|d| d.f_mul_scalar(-settings.diversity_weight))
                .and_then(|d| mean.f_neg()?.f_add(&d)),
        }
        .context(|| "the objective".into())?;
        Ok((loss, shown))
    }
}

/// A node by its name, or a block (`_blocks.3`, `layer2`) by its last node.
pub fn resolve_node(graph: &Graph, name: &str) -> Result<NodeId> {
    graph.node_id(name).or_else(|| graph.block_id(name).and_then(|b| graph.block_output(b))).ok_or_else(|| {
        Error::Input(format!(
            "{} has no node or block {name:?} (`convscope summary {}` lists them)",
            graph.arch, graph.arch
        ))
    })
}

/// Lucent's `diversity(layer)`: minus the summed cosine similarity of every ordered pair of
/// the batch's Gram matrices, over the batch size.
pub fn diversity(activations: &Tensor) -> Result<Tensor, tch::TchError> {
    let size = activations.size();
    let (b, c) = (size[0], size[1]);
    let flat = activations.f_reshape([b, c, -1])?;
    let grams = flat.f_matmul(&flat.f_transpose(1, 2)?)?;
    // F.normalize(p=2, dim=(1, 2)): each Gram over its Frobenius norm, at least 1e-12.
    let norms =
        grams.f_square()?.f_sum_dim_intlist([1, 2].as_slice(), true, Kind::Float)?.f_sqrt()?.f_clamp_min(1e-12)?;
    let grams = grams.f_div(&norms)?;
    let mut total: Option<Tensor> = None;
    for i in 0..b {
        let mut inner: Option<Tensor> = None;
        for j in (0..b).filter(|&j| j != i) {
            let term = grams.f_select(0, i)?.f_mul(&grams.f_select(0, j)?)?.f_sum(Kind::Float)?;
            inner = Some(match inner {
                Some(sum) => sum.f_add(&term)?,
                None => term.f_add_scalar(0.0)?,
            });
        }
        // Python's sum() starts from 0.
        let inner = inner.map_or_else(|| Tensor::f_zeros([], (Kind::Float, activations.device())), Ok)?;
        total = Some(match total {
            Some(sum) => sum.f_add(&inner)?,
            None => inner.f_add_scalar(0.0)?,
        });
    }
    let total = total.map_or_else(|| Tensor::f_zeros([], (Kind::Float, activations.device())), Ok)?;
    total.f_neg()?.f_div_scalar(b as f64)
}

/// Optimises images for `channels` of `node` (one image per channel; a diversity run takes
/// exactly one channel and optimises `DIVERSITY_BATCH` images of it). `None` when `control`
/// said stop.
pub fn visualize(
    model: &Model,
    preprocess: &Preprocess,
    node: NodeId,
    channels: &[i64],
    settings: &Settings,
    control: &mut Control,
) -> Result<Option<Visualization>> {
    settings.check()?;
    if settings.objective == Objective::Diversity && channels.len() != 1 {
        return Err(Error::Input(format!(
            "diversity optimises {DIVERSITY_BATCH} images of one channel, got {} channels",
            channels.len()
        )));
    }
    let started = Instant::now();
    let pipeline = Pipeline::new(model, preprocess, node, channels.to_vec())?;
    let batch = if settings.objective == Objective::Diversity { DIVERSITY_BATCH } else { channels.len() as i64 };
    let device = model.device();
    let fft = FftImage::new(batch, model.graph().input_channels(), settings.size, settings.size, device)?;
    let mut spectrum = seeded(settings.seed, || fft.random_spectrum(device))?
        .f_set_requires_grad(true)
        .context(|| "the spectrum as a leaf".into())?;
    let mut adam = Adam::new(&spectrum, settings.lr)?;
    // Another stream than libtorch's, seeded from the same number.
    let mut rng = SplitMix64::new(settings.seed as u64);
    let mut curve = Vec::with_capacity(settings.steps);
    for step in 1..=settings.steps {
        if (control.interrupt)() {
            return Ok(None);
        }
        let draws = Draws::draw(&mut rng);
        let shown = adam_step(&pipeline, &fft, &mut spectrum, &mut adam, &draws, settings)?;
        curve.push(shown);
        let last = step == settings.steps;
        let preview_due = last || (settings.preview_every > 0 && step % settings.preview_every == 0);
        let preview = preview_due.then(|| current_images(&fft, &spectrum)).transpose()?;
        (control.progress)(Progress { step, steps: settings.steps, activation: shown, preview: preview.as_ref() });
    }
    let images = current_images(&fft, &spectrum)?;
    let activations = pipeline.final_activations(&images.f_to_device(device).context(|| "the images".into())?)?;
    let channels = if settings.objective == Objective::Diversity {
        vec![channels[0]; DIVERSITY_BATCH as usize]
    } else {
        channels.to_vec()
    };
    Ok(Some(Visualization { node, channels, images, activations, curve, seconds: started.elapsed().as_secs_f64() }))
}

/// One optimisation step with the transforms' `draws`; the batch's mean activation.
pub fn adam_step(
    pipeline: &Pipeline,
    fft: &FftImage,
    spectrum: &mut Tensor,
    adam: &mut Adam,
    draws: &Draws,
    settings: &Settings,
) -> Result<f64> {
    let (shown, grad) = objective_gradient(pipeline, fft, spectrum, draws, settings)?;
    adam.step(spectrum, &grad)?;
    Ok(shown)
}

/// A step's batch mean activation and the gradient of its loss with respect to `spectrum`
/// (a leaf that requires grad), with the transforms' `draws`.
pub fn objective_gradient(
    pipeline: &Pipeline,
    fft: &FftImage,
    spectrum: &Tensor,
    draws: &Draws,
    settings: &Settings,
) -> Result<(f64, Tensor)> {
    let images = fft.image(spectrum)?;
    let transformed = transform::standard(&images, draws)?;
    let (loss, shown) = pipeline.loss(&transformed, settings)?;
    let grads = Tensor::f_run_backward(&[&loss], &[spectrum], false, false)
        .context(|| "the gradient of the objective".into())?;
    let grad = grads.into_iter().next().ok_or_else(|| Error::Input("no gradient for the spectrum".into()))?;
    Ok((shown, grad))
}

/// The images of `spectrum` on the CPU, detached.
fn current_images(fft: &FftImage, spectrum: &Tensor) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    fft.image(spectrum)?.f_to_device(tch::Device::Cpu).context(|| "the images to the CPU".into())
}

/// One `C×H×W` image in [0, 1] (C = 1 or 3) as 8-bit RGB.
pub fn to_rgb8(image: &Tensor) -> Result<RgbImage> {
    let size = image.size();
    let &[c @ (1 | 3), h, w] = size.as_slice() else {
        return Err(Error::Input(format!("expected a 1×H×W or 3×H×W image, got {size:?}")));
    };
    let values = image
        .f_to_kind(Kind::Float)
        .and_then(|t| t.f_contiguous())
        .and_then(|t| Vec::<f32>::try_from(&t.f_flatten(0, -1)?))
        .context(|| "reading the image".into())?;
    let plane = (h * w) as usize;
    Ok(RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w as usize + x as usize;
        image::Rgb(std::array::from_fn(|k| {
            let channel = if c == 1 { 0 } else { k };
            (values[channel * plane + i].clamp(0.0, 1.0) * 255.0).round() as u8
        }))
    }))
}

/// `N×C×H×W` images side by side in rows of `columns`, a `gap` of white between them.
pub fn grid(images: &Tensor, columns: usize, gap: u32) -> Result<RgbImage> {
    let n = images.size()[0] as usize;
    let tiles = (0..n)
        .map(|i| images.f_get(i as i64).context(|| "an image".into()).and_then(|t| to_rgb8(&t)))
        .collect::<Result<Vec<_>>>()?;
    let Some(first) = tiles.first() else {
        return Err(Error::Input("no image to lay out".into()));
    };
    let (w, h) = first.dimensions();
    let columns = columns.clamp(1, n);
    let rows = n.div_ceil(columns);
    let mut out = RgbImage::from_pixel(
        columns as u32 * (w + gap) - gap,
        rows as u32 * (h + gap) - gap,
        image::Rgb([255, 255, 255]),
    );
    for (i, tile) in tiles.iter().enumerate() {
        let (col, row) = ((i % columns) as u32, (i / columns) as u32);
        image::imageops::replace(&mut out, tile, i64::from(col * (w + gap)), i64::from(row * (h + gap)));
    }
    Ok(out)
}
