//! Occlusion (captum's `Occlusion` with a window over every channel and baseline 0): each
//! window position is set to 0 in a copy of the image, and every pixel is given the mean,
//! over the windows that covered it, of score(image) − score(occluded copy). The positions are
//! captum's: ⌈(size − window) / stride⌉ + 1 along each side, the last ones cut at the border.
//! Forward passes only, batched, in the reference layout.

use tch::{Device, Kind, Tensor};

use super::{Control, Explanation, LayerMap, Objective, Settings, batch_size, to_cpu};
use crate::error::{Error, Result, TorchContext};
use crate::executor::{Layout, Model, RunOptions};

/// The windows' top-left corners along one side of `size` pixels.
pub fn window_starts(size: i64, window: i64, stride: i64) -> Result<Vec<i64>> {
    if window < 1 || stride < 1 {
        return Err(Error::Input("the occlusion window and stride must be at least 1 pixel".into()));
    }
    if window > size {
        return Err(Error::Input(format!("an occlusion window of {window} pixels does not fit a {size}-pixel side")));
    }
    if stride > window && window < size {
        return Err(Error::Input(format!("a stride of {stride} would skip pixels between {window}-pixel windows")));
    }
    let shifts = (size - window + stride - 1) / stride + 1;
    Ok((0..shifts).map(|i| i * stride).collect())
}

pub(super) fn explain(
    model: &Model,
    input: &Tensor,
    opts: &RunOptions,
    settings: &Settings,
    control: &mut Control,
) -> Result<Option<Explanation>> {
    let opts = RunOptions { layout: Layout::Reference, ..opts.clone() };
    let size = input.size();
    let (channels, height, width) = (size[1], size[2], size[3]);
    let rows = window_starts(height, settings.window, settings.stride)?;
    let columns = window_starts(width, settings.window, settings.stride)?;
    let windows: Vec<(i64, i64)> = columns.iter().flat_map(|&x| rows.iter().map(move |&y| (y, x))).collect();
    let logits = model.forward(input, &opts)?;
    let objective = Objective::resolve(settings.target, &logits)?;
    let base = objective.score(&logits)?.f_double_value(&[0]).context(|| "the image's score".into())? as f32;
    let batch = batch_size(model.graph(), &opts, input, false, settings);
    let plane = (height * width) as usize;
    let mut total = vec![0f32; plane];
    let mut covered = vec![0f32; plane];
    let span = |start: i64, side: i64| start..(start + settings.window).min(side);
    control.report(0, windows.len(), "windows");
    for (done, chunk) in windows.chunks(batch).enumerate() {
        if (control.interrupt)() {
            return Ok(None);
        }
        let occluded = input.f_repeat([chunk.len() as i64, 1, 1, 1]).context(|| "occluded copies".into())?;
        for (i, &(y, x)) in chunk.iter().enumerate() {
            let (ys, xs) = (span(y, height), span(x, width));
            let _ = occluded
                .f_narrow(0, i as i64, 1)
                .and_then(|t| t.f_narrow(2, y, ys.end - y))
                .and_then(|t| t.f_narrow(3, x, xs.end - x))
                .and_then(|mut t| t.f_fill_(0.0))
                .context(|| "occluding".into())?;
        }
        let scores = objective
            .score(&model.forward(&occluded, &opts)?)?
            .f_to_kind(Kind::Float)
            .and_then(|s| s.f_to(Device::Cpu))
            .context(|| "scores".into())?;
        let scores = Vec::<f32>::try_from(&scores).context(|| "scores".into())?;
        for (&(y, x), score) in chunk.iter().zip(scores) {
            let difference = base - score;
            for row in span(y, height) {
                for column in span(x, width) {
                    let i = (row * width + column) as usize;
                    total[i] += difference;
                    covered[i] += 1.0;
                }
            }
        }
        control.report((done * batch + chunk.len()).min(windows.len()), windows.len(), "windows");
    }
    let map: Vec<f32> = total.iter().zip(&covered).map(|(t, c)| t / c).collect();
    let raw = Tensor::f_from_slice(&map)
        .and_then(|m| m.f_view([1, 1, height, width]))
        .and_then(|m| m.f_repeat([1, channels, 1, 1]))
        .context(|| "the occlusion map".into())?;
    Ok(Some(Explanation {
        method: settings.method,
        objective,
        logits: to_cpu(&logits)?,
        maps: vec![LayerMap { node: None, raw }],
        completeness: None,
        guided_relus: None,
    }))
}
