//! Maps from the input gradient of batches of images, chunk by chunk:
//!
//! - Saliency (captum's `Saliency`, abs=True): |∂score/∂x|.
//! - SmoothGrad (captum's `NoiseTunnel(Saliency)`, smoothgrad): the mean of |∂score/∂x| over
//!   `samples` copies of x with Gaussian noise of standard deviation σ·(max x − min x), all the
//!   noise drawn at once as `randn([samples, C, H, W]) · stdev` after `manual_seed(seed)`.
//! - Integrated Gradients (captum's `IntegratedGradients`): (x − b) · Σ_i w_i ∂score/∂x at
//!   b + α_i (x − b), with captum's nodes and weights (Gauss–Legendre or its trapezoid), and the
//!   completeness check Σ attributions against score(x) − score(b).

use tch::{Device, Kind, Tensor};

use super::{
    Baseline, Completeness, Control, Explanation, Integration, LayerMap, Method, Objective, Settings, batch_size,
    to_cpu,
};
use crate::error::{Error, Result, TorchContext};
use crate::executor::{Layout, Model, RunOptions};
use crate::preprocess::{MNIST_MEAN, MNIST_STD, Preprocess};

pub(super) fn explain(
    model: &Model,
    input: &Tensor,
    opts: &RunOptions,
    preprocess: &Preprocess,
    settings: &Settings,
    control: &mut Control,
) -> Result<Option<Explanation>> {
    if settings.method == Method::Saliency {
        return saliency(model, input, opts, settings, control);
    }
    let logits = plain_logits(model, input, opts)?;
    let objective = Objective::resolve(settings.target, &logits)?;
    let batch = batch_size(model.graph(), opts, input, true, settings);
    let (raw, completeness) = match settings.method {
        Method::SmoothGrad => match smoothgrad(model, input, opts, &objective, settings, batch, control)? {
            Some(map) => (map, None),
            None => return Ok(None),
        },
        _ => {
            let baseline = baseline(preprocess, settings.baseline, input)?;
            let Some(map) = integrated_gradients(model, input, &baseline, opts, &objective, settings, batch, control)?
            else {
                return Ok(None);
            };
            let completeness = completeness(model, input, &baseline, opts, &objective, &map)?;
            (map, Some(completeness))
        }
    };
    Ok(Some(Explanation {
        method: settings.method,
        objective,
        logits: to_cpu(&logits)?,
        maps: vec![LayerMap { node: None, raw: to_cpu(&raw)? }],
        completeness,
        guided_relus: None,
    }))
}

/// |∂score/∂x| from one forward pass with gradients, whose logits also say which class the
/// prediction is: a separate plain pass for that cost a forward's time, 40% over captum's.
fn saliency(
    model: &Model,
    input: &Tensor,
    opts: &RunOptions,
    settings: &Settings,
    control: &mut Control,
) -> Result<Option<Explanation>> {
    control.report(0, 1, "passes");
    if (control.interrupt)() {
        return Ok(None);
    }
    let x = input.f_detach().and_then(|x| x.f_set_requires_grad(true)).context(|| "the input".into())?;
    let tracked = model.forward_with_grad(&x, &RunOptions { layout: Layout::Reference, ..opts.clone() })?;
    let logits = tracked.f_detach().context(|| "the logits".into())?;
    let objective = Objective::resolve(settings.target, &logits)?;
    let score = objective.score(&tracked)?;
    let grads = Tensor::f_run_backward(&[&score], &[&x], false, false).context(|| "backward pass".into())?;
    let raw = grads.into_iter().next().unwrap_or_else(Tensor::new).f_abs().context(|| "saliency".into())?;
    control.report(1, 1, "passes");
    Ok(Some(Explanation {
        method: settings.method,
        objective,
        logits: to_cpu(&logits)?,
        maps: vec![LayerMap { node: None, raw: to_cpu(&raw)? }],
        completeness: None,
        guided_relus: None,
    }))
}

/// The logits of the image in the reference layout, without gradients.
fn plain_logits(model: &Model, input: &Tensor, opts: &RunOptions) -> Result<Tensor> {
    model.forward(input, &RunOptions { layout: Layout::Reference, ..opts.clone() })
}

/// Σ over `images` (`n×C×H×W`) of ∂score/∂image, each gradient first mapped by `each`
/// and weighted by `weights[i]` (none: 1): the images go through in chunks of `batch`.
#[allow(clippy::too_many_arguments)]
fn chunked_gradients(
    model: &Model,
    images: &dyn Fn(std::ops::Range<usize>) -> Result<Tensor>,
    count: usize,
    weights: Option<&[f32]>,
    each: &dyn Fn(Tensor) -> Result<Tensor, tch::TchError>,
    opts: &RunOptions,
    objective: &Objective,
    batch: usize,
    control: &mut Control,
    what: &'static str,
) -> Result<Option<Tensor>> {
    let mut total: Option<Tensor> = None;
    let mut start = 0;
    control.report(0, count, what);
    while start < count {
        if (control.interrupt)() {
            return Ok(None);
        }
        let end = (start + batch).min(count);
        let chunk = images(start..end)?
            .f_detach()
            .and_then(|x| x.f_set_requires_grad(true))
            .context(|| "a chunk of images".into())?;
        let logits = model.forward_with_grad(&chunk, opts)?;
        let score = objective.score(&logits)?;
        let grads = Tensor::f_run_backward(&[&score], &[&chunk], false, false).context(|| "backward pass".into())?;
        let mut grad = each(grads.into_iter().next().unwrap_or_else(Tensor::new)).context(|| "gradients".into())?;
        if let Some(weights) = weights {
            let w = Tensor::f_from_slice(&weights[start..end])
                .and_then(|w| w.f_to(grad.device()))
                .and_then(|w| w.f_view([-1, 1, 1, 1]))
                .and_then(|w| grad.f_mul(&w))
                .context(|| "weighting the gradients".into())?;
            grad = w;
        }
        let sum = grad.f_sum_dim_intlist([0i64].as_slice(), true, None).context(|| "summing".into())?;
        total = Some(match total {
            Some(t) => t.f_add(&sum).context(|| "summing".into())?,
            None => sum,
        });
        start = end;
        control.report(start, count, what);
    }
    Ok(total)
}

fn smoothgrad(
    model: &Model,
    input: &Tensor,
    opts: &RunOptions,
    objective: &Objective,
    settings: &Settings,
    batch: usize,
    control: &mut Control,
) -> Result<Option<Tensor>> {
    let samples = settings.samples.max(1);
    let noise = smoothgrad_noise(input, settings.sigma, settings.seed, samples)?
        .f_to(input.device())
        .context(|| "moving the noise".into())?;
    let images = |range: std::ops::Range<usize>| {
        noise
            .f_narrow(0, range.start as i64, range.len() as i64)
            .and_then(|n| input.f_add(&n))
            .context(|| "noisy images".into())
    };
    let Some(sum) =
        chunked_gradients(model, &images, samples, None, &|g| g.f_abs(), opts, objective, batch, control, "samples")?
    else {
        return Ok(None);
    };
    Ok(Some(sum.f_div_scalar(samples as f64).context(|| "SmoothGrad".into())?))
}

/// SmoothGrad's noise for `input`: `manual_seed(seed)`, then `randn([samples, C, H, W])` on
/// the CPU times σ·(max − min of the input), as captum draws it (torch.normal(0, stdev)).
pub fn smoothgrad_noise(input: &Tensor, sigma: f64, seed: i64, samples: usize) -> Result<Tensor> {
    let range = input
        .f_max()
        .and_then(|max| max.f_sub(&input.f_min()?))
        .and_then(|r| r.f_double_value(&[]))
        .context(|| "the input's range".into())?;
    let stdev = sigma * range;
    let size = input.size();
    crate::executor::seeded(seed, || {
        Tensor::f_randn([samples as i64, size[1], size[2], size[3]], (Kind::Float, Device::Cpu))
    })
    .and_then(|n| n.f_mul_scalar(stdev))
    .context(|| "SmoothGrad's noise".into())
}

/// captum's nodes α_i and weights w_i for `steps` points, in float64 as captum computes them.
pub(super) fn path(integration: Integration, steps: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    match integration {
        Integration::GaussLegendre => {
            let (nodes, weights) = gauss_legendre(steps);
            Ok((nodes.iter().map(|x| 0.5 * (1.0 + x)).collect(), weights.iter().map(|w| 0.5 * w).collect()))
        }
        Integration::Trapezoid => {
            if steps < 2 {
                return Err(Error::Input("the trapezoid rule needs at least 2 steps".into()));
            }
            // torch.linspace(0, 1, n) in float32, as captum takes it.
            let alphas = Tensor::f_linspace(0.0, 1.0, steps as i64, (Kind::Float, Device::Cpu))
                .and_then(|t| Vec::<f32>::try_from(&t))
                .context(|| "the path's points".into())?;
            let mut weights = vec![1.0 / steps as f64; steps];
            weights[0] /= 2.0;
            weights[steps - 1] /= 2.0;
            Ok((alphas.into_iter().map(f64::from).collect(), weights))
        }
    }
}

/// The nodes in (−1, 1), ascending, and weights of `n`-point Gauss–Legendre quadrature, to
/// float64 precision (numpy's `leggauss`): Newton's method on the Legendre polynomial.
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    // P_n and its derivative at x, by the three-term recurrence.
    let legendre = |x: f64| {
        let (mut p0, mut p1) = (1.0, x);
        for k in 2..=n {
            let k = k as f64;
            (p0, p1) = (p1, ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k);
        }
        let p = if n == 0 { p0 } else { p1 };
        let dp = n as f64 * (x * p - p0) / (x * x - 1.0);
        (p, dp)
    };
    for i in 0..n.div_ceil(2) {
        // Tricomi's approximation of the i-th root from the right, then Newton.
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        for _ in 0..100 {
            let (p, dp) = legendre(x);
            let step = p / dp;
            x -= step;
            if step.abs() <= 1e-16 {
                break;
            }
        }
        let (_, dp) = legendre(x);
        let w = 2.0 / ((1.0 - x * x) * dp * dp);
        nodes[n - 1 - i] = x;
        nodes[i] = -x;
        weights[n - 1 - i] = w;
        weights[i] = w;
    }
    if n % 2 == 1 {
        nodes[n / 2] = 0.0;
    }
    (nodes, weights)
}

/// The baseline image, `1×C×H×W` like `input`.
fn baseline(preprocess: &Preprocess, baseline: Baseline, input: &Tensor) -> Result<Tensor> {
    let zeros = input.f_zeros_like().context(|| "the baseline".into())?;
    if baseline == Baseline::Mean {
        return Ok(zeros);
    }
    let channels = input.size()[1];
    let black: Vec<f32> = match *preprocess {
        Preprocess::ImageNet { mean, std, .. } | Preprocess::Resized { mean, std, .. } => {
            mean.iter().zip(std).map(|(m, s)| (0.0 - m) / s).collect()
        }
        Preprocess::Digit { .. } => vec![(0.0 - MNIST_MEAN) / MNIST_STD],
        // The one channel given to all three.
        Preprocess::LabDigit { .. } => vec![(0.0 - MNIST_MEAN) / MNIST_STD; 3],
        Preprocess::Cifar => {
            // The preprocessing's own arithmetic on a black picture: its statistics are its own.
            let black = image::DynamicImage::new_rgb8(32, 32);
            let t = preprocess.apply(&black)?;
            Vec::<f32>::try_from(
                &t.f_mean_dim([2i64, 3].as_slice(), false, None)
                    .context(|| "black".into())?
                    .f_view([-1])
                    .context(|| "black".into())?,
            )
            .context(|| "black".into())?
        }
    };
    if black.len() as i64 != channels {
        return Err(Error::Input(format!(
            "a black baseline of {} channels for a {channels}-channel input",
            black.len()
        )));
    }
    Tensor::f_from_slice(&black)
        .and_then(|b| b.f_to(input.device()))
        .and_then(|b| b.f_view([1, channels, 1, 1]))
        .and_then(|b| zeros.f_add(&b))
        .context(|| "the baseline".into())
}

#[allow(clippy::too_many_arguments)]
fn integrated_gradients(
    model: &Model,
    input: &Tensor,
    baseline: &Tensor,
    opts: &RunOptions,
    objective: &Objective,
    settings: &Settings,
    batch: usize,
    control: &mut Control,
) -> Result<Option<Tensor>> {
    let steps = settings.steps.max(1);
    let (alphas, weights) = path(settings.integration, steps)?;
    // torch.tensor(step_sizes) makes them float32.
    let weights: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
    let difference = input.f_sub(baseline).context(|| "input − baseline".into())?;
    let images = |range: std::ops::Range<usize>| {
        // captum's `baseline + alpha * (input - baseline)`, point by point.
        let points = alphas[range]
            .iter()
            .map(|&alpha| difference.f_mul_scalar(alpha).and_then(|d| baseline.f_add(&d)))
            .collect::<Result<Vec<_>, _>>()
            .context(|| "points along the path".into())?;
        Tensor::f_cat(&points, 0).context(|| "points along the path".into())
    };
    let Some(total) =
        chunked_gradients(model, &images, steps, Some(&weights), &|g| Ok(g), opts, objective, batch, control, "steps")?
    else {
        return Ok(None);
    };
    Ok(Some(total.f_mul(&difference).context(|| "Integrated Gradients".into())?))
}

fn completeness(
    model: &Model,
    input: &Tensor,
    baseline: &Tensor,
    opts: &RunOptions,
    objective: &Objective,
    attribution: &Tensor,
) -> Result<Completeness> {
    let both = Tensor::f_cat(&[input, baseline], 0).context(|| "input and baseline".into())?;
    let scores = objective.score(&plain_logits(model, &both, opts)?)?;
    let read =
        |t: Result<Tensor, tch::TchError>| t.and_then(|t| t.f_double_value(&[])).context(|| "completeness".into());
    Ok(Completeness {
        attribution_sum: read(attribution.f_sum(Kind::Double))?,
        score_input: read(scores.f_get(0))?,
        score_baseline: read(scores.f_get(1))?,
    })
}
