//! Adam as `torch.optim.Adam` computes it on the CPU (`_single_tensor_adam`, no weight decay,
//! no amsgrad), for one parameter.

use tch::Tensor;

use crate::error::{Result, TorchContext};

pub struct Adam {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    step: i32,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

impl Adam {
    /// PyTorch's defaults but the learning rate: betas (0.9, 0.999), eps 1e-8.
    pub fn new(param: &Tensor, lr: f64) -> Result<Self> {
        let zeros = || param.f_zeros_like().context(|| "Adam's state".into());
        Ok(Self { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 0, exp_avg: zeros()?, exp_avg_sq: zeros()? })
    }

    /// One step of `param` (a leaf, changed in place) along `grad`.
    pub fn step(&mut self, param: &mut Tensor, grad: &Tensor) -> Result<()> {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let Self { lr, beta1, beta2, eps, step, exp_avg, exp_avg_sq } = self;
        (|| {
            let _ = exp_avg.f_lerp_(grad, 1.0 - *beta1)?;
            let _ = exp_avg_sq.f_mul_scalar_(*beta2)?;
            // addcmul_(grad, grad, value=1 − β2): the kernel multiplies value · t1 · t2.
            let _ = exp_avg_sq.f_add_(&grad.f_mul_scalar(1.0 - *beta2)?.f_mul(grad)?)?;
            let bias_correction1 = 1.0 - beta1.powf(f64::from(*step));
            let bias_correction2 = 1.0 - beta2.powf(f64::from(*step));
            let step_size = *lr / bias_correction1;
            let denom = exp_avg_sq.f_sqrt()?.f_div_scalar(bias_correction2.sqrt())?.f_add_scalar(*eps)?;
            // addcdiv_(exp_avg, denom, value=−step_size): value · t1 / t2.
            let _ = param.f_add_(&exp_avg.f_mul_scalar(-step_size)?.f_div(&denom)?)?;
            Ok(())
        })()
        .context(|| "an Adam step".into())
    }
}
