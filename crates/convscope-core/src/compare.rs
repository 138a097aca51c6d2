//! Two networks on one image, side by side: their top-5, forward time, parameters, MACs,
//! activation memory, and their feature maps at matched relative depth (the end of each
//! stage, a stage being the nodes working at one spatial resolution).

use std::time::Instant;

use tch::{Device, Kind, Tensor};

use crate::engine::{self, Prediction};
use crate::error::{Error, Result, TorchContext};
use crate::executor::{Layout, Model, Outputs, RunOptions};
use crate::graph::{Graph, NodeId};
use crate::shapes::ShapeReport;
use crate::zoo::ArchSpec;

/// One network of a comparison.
#[derive(Clone, Debug)]
pub struct ComparedNet {
    pub arch: &'static str,
    /// Where the weights came from (`WeightsOrigin` as text).
    pub origin: String,
    pub top5: Vec<Prediction>,
    /// Median of the timed plain forward passes, in milliseconds.
    pub forward_ms: f64,
    pub params: i64,
    pub macs: i64,
    /// Every node's output at batch 1 in float32: what keeping them all for the layer view takes.
    pub activation_bytes: i64,
    /// The input as this network sees it, `[C, H, W]`.
    pub input: [i64; 3],
}

/// One network's feature map at the end of a stage.
#[derive(Clone, Debug)]
pub struct StageMap {
    pub node: NodeId,
    pub name: String,
    /// `[C, H, W]`.
    pub shape: Vec<i64>,
    /// How far through the network the node is: its index over the node count.
    pub depth: f32,
    /// The mean absolute activation over channels, `H × W`, row after row.
    pub map: Vec<f32>,
}

/// The answer to a comparison.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub nets: [ComparedNet; 2],
    /// Rows of maps at matched relative depth, the first network's then the second's.
    pub stages: Vec<[StageMap; 2]>,
    pub image: String,
    pub device: Device,
}

/// Timed plain forward passes after one untimed.
const TIMED_RUNS: usize = 3;
/// Above this, a network's outputs are not all kept at once: each stage is run up to alone.
const CAPTURE_LIMIT_BYTES: i64 = 1 << 30;

/// The last node at each spatial resolution, in execution order: the ends of the stages.
/// Auxiliary classifiers and 1×1 maps (global pooling, squeeze-and-excitation) are left out,
/// and so is a resolution where no convolution works (the input's, before a strided stem).
pub fn stage_ends(graph: &Graph, report: &ShapeReport) -> Vec<NodeId> {
    let mut ends: Vec<((i64, i64), NodeId, bool)> = Vec::new();
    for (id, (node, info)) in graph.nodes.iter().zip(&report.nodes).enumerate() {
        let [_, h, w] = info.shape[..] else { continue };
        if node.aux || id == graph.input || h * w <= 1 {
            continue;
        }
        let conv = matches!(node.op, crate::graph::Op::Conv2d(_));
        match ends.iter_mut().find(|(size, _, _)| *size == (h, w)) {
            Some(entry) => {
                entry.1 = id;
                entry.2 |= conv;
            }
            None => ends.push(((h, w), id, conv)),
        }
    }
    let mut ends: Vec<NodeId> = ends.into_iter().filter(|(_, _, conv)| *conv).map(|(_, id, _)| id).collect();
    ends.sort_unstable();
    ends
}

/// Pairs the stages of two networks by relative depth: as many rows as the shorter has
/// stages, first with first and last with last, the rest spread evenly between.
pub fn matched_stages(a: usize, b: usize) -> Vec<(usize, usize)> {
    let rows = a.min(b);
    let pick = |n: usize, j: usize| {
        if rows <= 1 { n.saturating_sub(1) } else { (j * (n - 1) + (rows - 1) / 2) / (rows - 1) }
    };
    (0..rows).map(|j| (pick(a, j), pick(b, j))).collect()
}

/// Bytes of every node's output at batch 1, float32, auxiliary classifiers left out.
pub fn activation_bytes(report: &ShapeReport) -> i64 {
    report.nodes.iter().filter(|n| !n.aux).map(|n| n.shape.iter().product::<i64>() * 4).sum()
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// A stage's output as the mean absolute activation over its channels.
fn channel_mean(output: &Tensor) -> Result<Vec<f32>> {
    let map = output
        .f_get(0)
        .and_then(|t| t.f_abs())
        .and_then(|t| t.f_mean_dim(0, false, Kind::Float))
        .and_then(|t| t.f_to(Device::Cpu))
        .and_then(|t| t.f_flatten(0, -1))
        .context(|| "averaging a feature map".into())?;
    Vec::<f32>::try_from(&map).context(|| "reading a feature map".into())
}

/// What one network gives for the image: its facts and its stage maps.
fn run_one(spec: &ArchSpec, model: &Model, image: &image::DynamicImage) -> Result<(ComparedNet, Vec<StageMap>)> {
    let device = model.device();
    let graph = model.graph();
    let report = graph.infer_shapes(spec.input[1], spec.input[2])?;
    let input = spec.preprocess.apply(image)?.f_to(device).context(|| "moving the input".into())?;

    let plain = RunOptions::default();
    let logits = model.forward(&input, &plain)?;
    let top5 = engine::top_k(&logits, spec.labels, 5)?;
    let mut times = Vec::with_capacity(TIMED_RUNS);
    for _ in 0..TIMED_RUNS {
        sync(device);
        let start = Instant::now();
        let output = model.forward(&input, &plain)?;
        sync(device);
        times.push(start.elapsed().as_secs_f64() * 1e3);
        drop(output);
    }
    times.sort_by(f64::total_cmp);

    // The maps in the reference layout, as the layer view shows them.
    let shown = RunOptions { layout: Layout::Reference, ..RunOptions::default() };
    let ends = stage_ends(graph, &report);
    let bytes = activation_bytes(&report);
    let outputs =
        if bytes <= CAPTURE_LIMIT_BYTES { model.forward_capture(&input, &shown)?.outputs } else { Outputs::default() };
    let mut maps = Vec::with_capacity(ends.len());
    for &node in &ends {
        let output = match outputs.get(node)? {
            Some(output) => output,
            None => model.forward_to(&input, &shown, node)?,
        };
        maps.push(StageMap {
            node,
            name: graph.nodes[node].name.clone(),
            shape: report.nodes[node].shape.clone(),
            depth: node as f32 / graph.nodes.len().max(1) as f32,
            map: channel_mean(&output)?,
        });
    }
    let net = ComparedNet {
        arch: spec.id,
        origin: model.origin().to_string(),
        top5,
        forward_ms: times[times.len() / 2],
        params: report.total_params(),
        macs: report.total_macs(),
        activation_bytes: bytes,
        input: spec.input,
    };
    Ok((net, maps))
}

/// Runs `image` through both networks (each with its own preprocessing) and sets them side by side.
pub fn compare(
    specs: [&ArchSpec; 2],
    models: [&Model; 2],
    image: &image::DynamicImage,
    name: &str,
) -> Result<Comparison> {
    if models[0].device() != models[1].device() {
        return Err(Error::Input("the two networks are on different devices".into()));
    }
    let (a, maps_a) = run_one(specs[0], models[0], image)?;
    let (b, maps_b) = run_one(specs[1], models[1], image)?;
    let mut maps_a: Vec<Option<StageMap>> = maps_a.into_iter().map(Some).collect();
    let mut maps_b: Vec<Option<StageMap>> = maps_b.into_iter().map(Some).collect();
    let stages = matched_stages(maps_a.len(), maps_b.len())
        .into_iter()
        .filter_map(|(i, j)| Some([maps_a[i].take()?, maps_b[j].take()?]))
        .collect();
    Ok(Comparison { nets: [a, b], stages, image: name.to_owned(), device: models[0].device() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo;

    fn ends(id: &str) -> Vec<String> {
        let spec = zoo::find(id).expect("zoo");
        let graph = spec.graph();
        let report = graph.infer_shapes(spec.input[1], spec.input[2]).expect("shapes");
        stage_ends(&graph, &report).into_iter().map(|n| graph.nodes[n].name.clone()).collect()
    }

    #[test]
    fn stages_end_where_the_resolution_drops() {
        // ResNet-18: the stem at 112, then layer1..layer4 at 56, 28, 14, 7.
        assert_eq!(ends("resnet18"), ["relu", "layer1.1.relu", "layer2.1.relu", "layer3.1.relu", "layer4.1.relu"]);
        let vgg = ends("vgg16");
        assert_eq!(vgg, ["features.3", "features.8", "features.15", "features.22", "features.29"]);
        // EfficientNet's squeeze-and-excitation works on 1×1 maps: never a stage.
        assert_eq!(ends("efficientnet_b0").len(), 5);
        // GoogLeNet's auxiliary classifiers are no stage of the network.
        assert_eq!(
            ends("googlenet"),
            ["conv1.relu", "conv3.relu", "inception3b.concat", "inception4e.concat", "inception5b.concat"]
        );
    }

    #[test]
    fn stages_pair_first_with_first_and_last_with_last() {
        assert_eq!(matched_stages(5, 5), vec![(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]);
        assert_eq!(matched_stages(6, 4), vec![(0, 0), (2, 1), (3, 2), (5, 3)]);
        assert_eq!(matched_stages(3, 7), vec![(0, 0), (1, 3), (2, 6)]);
        assert_eq!(matched_stages(1, 4), vec![(0, 3)]);
        assert!(matched_stages(0, 4).is_empty());
    }

    #[test]
    fn two_small_networks_compare_on_one_image() {
        let specs = [zoo::find("resnet20").expect("zoo"), zoo::find("plain20").expect("zoo")];
        let models = specs.each_ref().map(|s| Model::random(s.graph(), Device::Cpu, 0).expect("model"));
        let image = crate::preprocess::load_image(&crate::paths::asset("chelsea.png")).expect("the bundled cat");
        let c = compare([&specs[0], &specs[1]], [&models[0], &models[1]], &image, "chelsea.png").expect("compares");
        assert_eq!(c.nets[0].arch, "resnet20");
        assert_eq!(c.nets[1].arch, "plain20");
        assert_eq!(c.nets[0].params, c.nets[1].params, "the plain twin has the same layers");
        assert!(c.nets.iter().all(|n| n.top5.len() == 5 && n.forward_ms > 0.0 && n.activation_bytes > 0));
        // 32, 16 and 8: three stages each, paired in order.
        assert_eq!(c.stages.len(), 3);
        for [a, b] in &c.stages {
            assert_eq!(a.shape[1..], b.shape[1..]);
            assert_eq!(a.map.len() as i64, a.shape[1] * a.shape[2]);
            assert!(a.map.iter().all(|v| v.is_finite() && *v >= 0.0));
        }
        assert!(c.stages[0][0].depth < c.stages[2][0].depth);
    }
}
