//! What the CLI, the GUI and the tests share above the executor: choosing a device,
//! finding and loading weights, turning an image into a prediction, and the gradient flow's
//! settings with their defaults (the batch it runs on is built in `batch`).

use std::path::{Path, PathBuf};

use serde::Serialize;
use tch::{Device, Tensor};

pub mod batch;

use crate::error::{Error, Result, TorchContext};
use crate::executor::{
    GradientMode, GradientOptions, GradientReport, Model, Objective, RunOptions, Targets, WeightsOrigin,
};
use crate::preprocess;
use crate::zoo::{ArchSpec, Labels};
use batch::{BatchImage, BatchKind, BatchSummary};

/// The seed of a model's random initialisation when none is given.
pub const DEFAULT_SEED: i64 = 0;

/// Parses `cpu`, `cuda`, `cuda:N` or `auto` (CUDA where available).
pub fn parse_device(text: &str) -> Result<Device> {
    let device = match text.trim().to_lowercase().as_str() {
        "cpu" => Device::Cpu,
        "auto" => Device::cuda_if_available(),
        "cuda" | "gpu" => Device::Cuda(0),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => Device::Cuda(n),
            None => return Err(Error::Input(format!("unknown device {text:?}: use cpu, cuda, cuda:N or auto"))),
        },
    };
    crate::executor::check_device(device)?;
    Ok(device)
}

/// A device as people read it: `CPU`, `CUDA:0`.
pub fn device_label(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("CUDA:{i}"),
        Device::Mps => "MPS".into(),
        Device::Vulkan => "Vulkan".into(),
        Device::Cpu => "CPU".into(),
    }
}

/// A device as `--device` and JSON write it: `cpu`, `cuda:0`.
pub fn device_id(device: Device) -> String {
    device_label(device).to_lowercase()
}

/// The installed weights of an architecture, if any.
pub fn installed_weights(id: &str) -> Option<PathBuf> {
    let path = crate::paths::weights_dir().join(format!("{id}.safetensors"));
    path.is_file().then_some(path)
}

#[derive(Clone, Debug)]
pub enum WeightsChoice {
    /// The given file.
    File(PathBuf),
    /// The installed file if there is one, else random.
    Installed {
        seed: i64,
    },
    Random {
        seed: i64,
    },
}

/// Builds an architecture's model on a device with the chosen weights. The strings are
/// warnings for the user (tensors holding NaN or infinity).
pub fn load_model(spec: &ArchSpec, weights: &WeightsChoice, device: Device) -> Result<(Model, Vec<String>)> {
    let graph = spec.graph();
    let (file, seed) = match weights {
        WeightsChoice::File(path) => (Some(path.clone()), DEFAULT_SEED),
        WeightsChoice::Installed { seed } => (installed_weights(spec.id), *seed),
        WeightsChoice::Random { seed } => (None, *seed),
    };
    let Some(path) = file else { return Ok((Model::random(graph, device, seed)?, Vec::new())) };
    let (model, report) = crate::weights::load(graph, device, &path)?;
    let mut warnings = Vec::new();
    if !report.non_finite.is_empty() {
        warnings.push(format!(
            "{} holds NaN or infinite values in {} tensors: {}",
            path.display(),
            report.non_finite.len(),
            report.non_finite.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok((model, warnings))
}

/// An image file as the architecture's input tensor (`1×C×H×W`).
pub fn image_input(spec: &ArchSpec, path: &Path) -> Result<Tensor> {
    let image = preprocess::load_image(path)?;
    spec.preprocess.apply(&image)
}

/// Reads the tensor named `input` from a safetensors file (N×C×H×W, already normalised).
pub fn tensor_input(path: &Path) -> Result<Tensor> {
    let tensors = crate::weights::read_tensors(path)?;
    let names: Vec<String> = tensors.iter().map(|(k, _)| k.clone()).collect();
    let (_, input) = tensors
        .into_iter()
        .find(|(k, _)| k == "input")
        .ok_or_else(|| Error::file(path, format!("holds no tensor named `input` (it has: {})", names.join(", "))))?;
    input.f_totype(tch::Kind::Float).context(|| "reading `input`".into())
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Prediction {
    pub class: i64,
    pub label: String,
    pub probability: f64,
}

/// The `k` most probable classes of the first sample.
pub fn top_k(logits: &Tensor, labels: Labels, k: i64) -> Result<Vec<Prediction>> {
    let probs = logits
        .f_softmax(-1, tch::Kind::Float)
        .and_then(|p| p.f_get(0))
        .and_then(|p| p.f_to(Device::Cpu))
        .context(|| "softmax".into())?;
    let k = k.clamp(1, probs.size()[0]);
    let (values, indices) = probs.f_topk(k, -1, true, true).context(|| "top-k".into())?;
    let values = Vec::<f64>::try_from(&values).context(|| "reading probabilities".into())?;
    let indices = Vec::<i64>::try_from(&indices).context(|| "reading classes".into())?;
    Ok(indices
        .into_iter()
        .zip(values)
        .map(|(class, probability)| Prediction { class, label: labels.name(class), probability })
        .collect())
}

/// A gradient flow as a face asks for it; `None` leaves the choice to the default for the
/// loaded weights and architecture (`GradientSettings::resolve`, the one place that decides).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct GradientSettings {
    pub mode: Option<GradientMode>,
    pub batch: Option<BatchKind>,
    pub objective: Objective,
    /// In a training step, dropout and stochastic depth drop at random.
    pub dropout: bool,
    /// The largest batch (`None`: `batch::default_batch_size`).
    pub batch_size: Option<usize>,
}

/// The mode a gradient flow takes when none is asked for: a training step on random weights,
/// whose untrained running statistics would make the inference mode's gradient an artefact of
/// depth; inference on weights from a file, trained ones, where "how does this prediction
/// depend on each layer" is the question.
pub fn default_gradient_mode(origin: &WeightsOrigin) -> GradientMode {
    match origin {
        WeightsOrigin::Random { .. } => GradientMode::TrainingStep,
        WeightsOrigin::File(_) => GradientMode::Inference,
    }
}

/// The batch a mode takes when none is asked for: a training step's batch statistics want a
/// batch of data; an inference pass asks about the image alone.
pub fn default_batch(mode: GradientMode) -> BatchKind {
    match mode {
        GradientMode::Inference => BatchKind::Image,
        GradientMode::TrainingStep => BatchKind::Dataset,
    }
}

/// Gradient settings with every choice made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ResolvedGradientSettings {
    pub options: GradientOptions,
    pub batch: BatchKind,
    pub batch_size: usize,
}

impl GradientSettings {
    /// The settings for `model` (built from `spec`), defaults filled in.
    pub fn resolve(&self, spec: &ArchSpec, model: &Model) -> ResolvedGradientSettings {
        let mode = self.mode.unwrap_or_else(|| default_gradient_mode(model.origin()));
        ResolvedGradientSettings {
            options: GradientOptions { mode, objective: self.objective, dropout: self.dropout },
            batch: self.batch.unwrap_or_else(|| default_batch(mode)),
            batch_size: self.batch_size.unwrap_or_else(|| batch::default_batch_size(spec, model.device())).max(1),
        }
    }
}

/// One gradient flow: what was differentiated, on which batch.
pub struct GradientFlowReport {
    pub report: GradientReport,
    pub batch: BatchSummary,
    pub settings: ResolvedGradientSettings,
}

/// Builds the batch `settings` ask for around `image` and runs the gradient pass on it; the
/// image gets `target` (`None`: its prediction). `None` when `interrupt` stopped it.
pub fn gradient_flow(
    model: &Model,
    spec: &ArchSpec,
    image: &BatchImage,
    settings: &ResolvedGradientSettings,
    target: Option<i64>,
    opts: &RunOptions,
    interrupt: &dyn Fn() -> bool,
) -> Result<Option<GradientFlowReport>> {
    let built = batch::build(spec, image, settings.batch, settings.batch_size, target)?;
    let targets = Targets::PerSample(built.targets);
    let Some(report) = model.gradient_pass(&built.input, &targets, opts, &settings.options, interrupt)? else {
        return Ok(None);
    };
    Ok(Some(GradientFlowReport { report, batch: built.summary, settings: *settings }))
}
