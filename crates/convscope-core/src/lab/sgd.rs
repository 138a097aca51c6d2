//! Stochastic gradient descent as `torch.optim.SGD` computes it (dampening 0, Nesterov off,
//! the single-tensor path PyTorch takes for CPU tensors): per parameter with a gradient,
//!
//! ```text
//! g = grad + weight_decay · p
//! b = g                      on the first step
//! b = momentum · b + g       after it
//! p = p − lr · b
//! ```
//!
//! PyTorch computes `g` and the last line as `a.add(b, alpha=α)`, which its CPU kernels run as
//! one fused multiply-add in float32 (α rounded to float32 first); libtorch's C API has no
//! `alpha`, and rounding the product and the sum apart differs in the last bit often enough
//! that a 56-layer plain network, whose loss amplifies every such bit a thousandfold in a step
//! or two, drifts away from PyTorch's within three steps. So these two lines are computed in
//! float64, where the product of two float32 numbers is exact, and rounded to float32 once:
//! PyTorch's result but for a halfway case in some billions.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::{Error, Result, TorchContext};

/// `a + α·b` rounded once to float32, as PyTorch's `a.add(b, alpha=α)` on float32 tensors.
fn fused_add(a: &Tensor, b: &Tensor, alpha: f64) -> std::result::Result<Tensor, tch::TchError> {
    let alpha = f64::from(alpha as f32);
    a.f_to_kind(Kind::Double)?.f_add(&b.f_to_kind(Kind::Double)?.f_mul_scalar(alpha)?)?.f_to_kind(Kind::Float)
}

/// The hyper-parameters of one optimiser; the learning rate may change between steps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
}

impl SgdConfig {
    pub fn check(&self) -> Result<()> {
        let fine = |v: f64| v.is_finite() && v >= 0.0;
        let lr_fine = self.lr.is_finite() && self.lr > 0.0;
        if !(lr_fine && fine(self.momentum) && fine(self.weight_decay)) {
            return Err(Error::Input(format!(
                "lr must be positive, momentum and weight decay not negative (got lr {}, momentum {}, weight decay {})",
                self.lr, self.momentum, self.weight_decay
            )));
        }
        Ok(())
    }
}

/// The optimiser's state: one momentum buffer per parameter, made on its first update.
pub struct Sgd {
    pub config: SgdConfig,
    buffers: Vec<Option<Tensor>>,
}

impl Sgd {
    /// An optimiser for `count` parameters.
    pub fn new(config: SgdConfig, count: usize) -> Result<Self> {
        config.check()?;
        Ok(Self { config, buffers: (0..count).map(|_| None).collect() })
    }

    /// Updates `params` in place with their `grads` (parallel lists); a parameter whose
    /// gradient is undefined (it took no part in the loss) is left alone, buffer included, as
    /// PyTorch leaves a parameter whose `.grad` is `None`.
    pub fn step(&mut self, params: &[&Tensor], grads: &[Tensor]) -> Result<()> {
        if params.len() != grads.len() || params.len() != self.buffers.len() {
            return Err(Error::Input(format!(
                "{} parameters, {} gradients and {} momentum buffers",
                params.len(),
                grads.len(),
                self.buffers.len()
            )));
        }
        let SgdConfig { lr, momentum, weight_decay } = self.config;
        let _guard = tch::no_grad_guard();
        for ((param, grad), buffer) in params.iter().zip(grads).zip(&mut self.buffers) {
            if !grad.defined() {
                continue;
            }
            let mut update = || -> std::result::Result<(), tch::TchError> {
                let mut g =
                    if weight_decay != 0.0 { fused_add(grad, param, weight_decay)? } else { grad.f_detach_copy()? };
                if momentum != 0.0 {
                    g = match buffer.take() {
                        None => g,
                        // `buf.mul_(momentum).add_(g)`: PyTorch's own two roundings.
                        Some(mut b) => {
                            let _ = b.f_mul_scalar_(momentum)?.f_add_(&g)?;
                            b
                        }
                    };
                    *buffer = Some(g.shallow_clone());
                }
                let updated = fused_add(param, &g, -lr)?;
                param.shallow_clone().f_copy_(&updated)?;
                Ok(())
            };
            update().context(|| "SGD step".into())?;
        }
        Ok(())
    }
}
