//! `Model::channel_tail`: computing a node's tail for some channels only gives the same
//! objective (each image's channel mean, summed) and the same gradient with respect to the
//! input as the whole node, within 1e-5 relative, on every family the tail walks through
//! differently: plain convolution + ReLU (VGG), depthwise convolutions, batch norms and
//! residual additions (MobileNet v2, EfficientNet-Lite0), an addition after batch norm
//! (ResNet), concatenation (DenseNet), the squeeze-and-excitation scale (MobileNet v3), a
//! channel split and shuffle (ShuffleNet v2) and a local response norm that stops the walk
//! (AlexNet 2012). Each case also checks that the tail did cut what it should, so a tail that
//! silently ran the whole node would fail. Random weights where none are shipped; the inputs
//! are seeded.

use convscope_core::engine::{self, WeightsChoice};
use convscope_core::executor::{ChannelTail, Layout, Model, RunOptions, seeded};
use convscope_core::featvis::{self, Pipeline, Settings, adam::Adam, param::FftImage, transform::Draws};
use convscope_core::graph::Op;
use convscope_core::zoo;
use tch::{Device, Kind, Tensor};

const TOLERANCE: f64 = 1e-5;
/// The fast layout (channels-last, batch norms folded) against the reference layout on noise
/// inputs: the parity tests hold plain forward's logits within 1e-4, and the same bound holds
/// here.
const FAST_TOLERANCE: f64 = 1e-4;
/// The same on a feature visualisation step's smooth images (see
/// `a_sliced_and_fast_step_follows_the_reference_step`).
const FAST_GRADIENT: f64 = 2e-2;

fn random(arch: &str) -> Model {
    let spec = zoo::find(arch).unwrap();
    Model::random(spec.graph(), Device::Cpu, 7).unwrap()
}

/// Seeded noise × `scale`: random weights shrink activations with depth, and a larger input
/// keeps the objectives compared well away from zero.
fn input(batch: i64, size: i64, scale: f64) -> Tensor {
    seeded(11, || Tensor::randn([batch, 3, size, size], (Kind::Float, Device::Cpu))) * scale
}

/// Σ over images of the mean of image i's channel (`per_image[i]`, or `per_image[0]` for
/// all), and its gradient with respect to `x`.
fn objective_and_gradient(tail: &ChannelTail, x: &Tensor, per_image: &[i64]) -> (f64, Tensor) {
    let x = x.detach().copy().set_requires_grad(true);
    let out = tail.forward_with_grad(&x).unwrap();
    let held = tail.channels();
    let n = x.size()[0];
    assert_eq!(out.size()[1], held.len() as i64, "the output holds the channels the tail says");
    let means: Vec<Tensor> = (0..n)
        .map(|i| {
            let c = per_image[if per_image.len() == 1 { 0 } else { i as usize }];
            let at = held.binary_search(&c).unwrap() as i64;
            out.get(i).get(at).mean(Kind::Float)
        })
        .collect();
    let loss = Tensor::stack(&means, 0).sum(Kind::Float);
    let grad = Tensor::run_backward(&[&loss], &[&x], false, false).remove(0);
    (loss.double_value(&[]), grad)
}

fn norm(t: &Tensor) -> f64 {
    t.to_kind(Kind::Double).norm().double_value(&[])
}

/// The cut tail against the whole node, both in `layout`; the sliced convolutions' names.
fn check(
    model: &Model,
    node_name: &str,
    per_image: &[i64],
    batch: i64,
    size: i64,
    scale: f64,
    layout: Layout,
) -> Vec<String> {
    let graph = model.graph();
    let node = featvis::resolve_node(graph, node_name).unwrap();
    let opts = RunOptions::default();
    let x = input(batch, size, scale);
    let whole = model.channel_tail(node, None, [size, size], &opts, Layout::Reference).unwrap();
    let cut = model.channel_tail(node, Some(per_image), [size, size], &opts, layout).unwrap();
    let mut union = per_image.to_vec();
    union.sort_unstable();
    union.dedup();
    assert_eq!(cut.channels(), union.as_slice(), "{node_name}: the tail's channels");
    let (loss, grad) = objective_and_gradient(&whole, &x, per_image);
    let (cut_loss, cut_grad) = objective_and_gradient(&cut, &x, per_image);
    let tolerance = if layout == Layout::Reference { TOLERANCE } else { FAST_TOLERANCE };
    let what = format!("{} {node_name} channels {per_image:?} ({layout:?})", graph.arch);
    assert!(loss.abs() > 1e-4, "{what}: the objective {loss} is too near zero to compare");
    assert!((cut_loss - loss).abs() <= tolerance * loss.abs(), "{what}: objective {cut_loss}, whole node's {loss}");
    // Float32's relative precision does not depend on scale; this guards against a gradient
    // that vanished (dead units everywhere), where a relative comparison says nothing.
    let reference = norm(&grad);
    assert!(reference > 10.0 * TOLERANCE, "{what}: the whole node's gradient norm {reference} is too small");
    let difference = norm(&(&cut_grad - &grad));
    assert!(
        difference <= tolerance * reference,
        "{what}: the gradients differ by {difference:e}, {:e} of the whole one's norm",
        difference / reference
    );
    cut.sliced_convolutions().into_iter().map(str::to_owned).collect()
}

#[test]
fn the_whole_tail_is_forward_to_with_grad() {
    let model = random("resnet18");
    let node = featvis::resolve_node(model.graph(), "layer2").unwrap();
    let opts = RunOptions::default();
    let x = input(2, 64, 1.0);
    let whole = model.channel_tail(node, None, [64, 64], &opts, Layout::Reference).unwrap();
    assert!(whole.sliced_nodes().is_empty(), "nothing is cut without channels: {:?}", whole.sliced_nodes());
    let ours = whole.forward_with_grad(&x).unwrap();
    let theirs = model.forward_to_with_grad(&x, &opts, node).unwrap();
    assert!(ours.equal(&theirs), "the whole tail is not forward_to_with_grad's output bit for bit");
}

#[test]
fn vgg_cuts_the_last_convolution() {
    let model = random("vgg11");
    // features.19: conv5_1's ReLU. The tail is the ReLU and conv5_1, one output channel of 512.
    let sliced = check(&model, "features.19", &[5], 1, 64, 1.0, Layout::Reference);
    assert_eq!(sliced, ["features.18"]);
    // Through a max pool too.
    let sliced = check(&model, "features.20", &[300], 2, 64, 1.0, Layout::Reference);
    assert_eq!(sliced, ["features.18"]);
}

#[test]
fn mobilenet_v2_cuts_through_depthwise_batch_norms_and_additions() {
    let model = random("mobilenet_v2");
    // The depthwise ReLU6 of block 2: its BN, the depthwise convolution, the expansion's
    // ReLU6 and BN, down to the 1×1 expansion, all for three channels.
    let sliced = check(&model, "features.2.conv.1.2", &[1, 40, 90], 3, 64, 10.0, Layout::Reference);
    assert_eq!(sliced, ["features.2.conv.0.0", "features.2.conv.1.0"]);
    // A residual block's output: the projection's BN and the 1×1 projection; the shortcut is
    // the block before's output, which the expansion reads whole.
    let sliced = check(&model, "features.3", &[7], 1, 64, 10.0, Layout::Reference);
    assert_eq!(sliced, ["features.3.conv.2"]);
}

#[test]
fn lite0_pretrained_cuts_its_tail_in_both_layouts() {
    let spec = zoo::find("efficientnet_lite0").unwrap();
    let weights = convscope_core::paths::weights_dir().join("efficientnet_lite0.safetensors");
    assert!(weights.is_file(), "{} is missing: the bootstrap converts it", weights.display());
    let (model, _) = engine::load_model(&spec, &WeightsChoice::File(weights), Device::Cpu).unwrap();
    for layout in [Layout::Reference, Layout::Fast] {
        // The block's output: stochastic depth (identity in eval), the addition, the
        // projection's BN, the projection.
        let sliced = check(&model, "_blocks.10", &[3, 50], 2, 96, 1.0, layout);
        assert_eq!(sliced, ["_blocks.10._project_conv"], "{layout:?}");
        let sliced = check(&model, "_blocks.5._swish", &[0, 9, 200], 3, 96, 1.0, layout);
        assert_eq!(sliced, ["_blocks.5._expand_conv", "_blocks.5._depthwise_conv"], "{layout:?}");
    }
}

#[test]
fn resnet_cuts_the_branch_after_its_batch_norm() {
    let model = random("resnet18");
    // layer2's output: ReLU after the addition of bn2 and the shortcut (layer2.0's output,
    // which layer2.1.conv1 reads whole).
    let sliced = check(&model, "layer2", &[17], 2, 64, 1.0, Layout::Reference);
    assert_eq!(sliced, ["layer2.1.conv2"]);
    // layer2.0: the shortcut is a projection (1×1 conv + BN), cut too.
    let sliced = check(&model, "layer2.0", &[4, 100], 2, 64, 1.0, Layout::Reference);
    assert_eq!(sliced, ["layer2.0.conv2", "layer2.0.downsample.0"]);
}

#[test]
fn densenet_maps_concatenated_channels_to_their_inputs() {
    let model = random("densenet121");
    // denseblock1's concatenation: 64 channels from the stem, then 32 from each layer's
    // conv2. Channel 3 is the stem's, 70 layer 1's, 250 layer 6's. Every layer but the last
    // also feeds the layers after it, which read it whole: only layer 6's conv2 is cut.
    let sliced = check(&model, "features.denseblock1.concat", &[3, 70, 250], 3, 64, 1.0, Layout::Reference);
    assert_eq!(sliced, ["features.denseblock1.denselayer6.conv2"]);
}

#[test]
fn mobilenet_v3_cuts_the_squeeze_and_excitation_gate() {
    let model = random("mobilenet_v3_small");
    let graph = model.graph();
    let scale = graph.nodes.iter().position(|n| matches!(n.op, Op::Scale)).expect("a squeeze-and-excitation scale");
    let name = graph.nodes[scale].name.clone();
    // The scale multiplies the features by the gate: the gate's last 1×1 convolution gives
    // only the channels asked for; the features are also pooled whole into the gate, so they
    // are not cut.
    let sliced = check(&model, &name, &[2, 5], 2, 64, 10.0, Layout::Reference);
    assert_eq!(sliced, [name.replace(".scale", ".fc2")]);
}

#[test]
fn shufflenet_slices_through_the_split_and_stops_at_the_shuffle() {
    let model = random("shufflenet_v2_x1_0");
    // stage2.1's concatenation: channel 10 is the left half of the split of stage2.0's
    // shuffled output (computed whole, then cut), channel 100 the right branch's.
    let sliced = check(&model, "stage2.1.cat", &[10, 100], 2, 64, 1.0, Layout::Reference);
    assert_eq!(sliced, ["stage2.1.branch2.5"]);
}

#[test]
fn a_local_response_norm_stops_the_tail() {
    let model = random("alexnet_2012");
    // features.7: the max pool after conv2's LRN, which mixes five neighbouring channels: the
    // pool is cut, the LRN and everything before it run whole.
    let node = featvis::resolve_node(model.graph(), "features.7").unwrap();
    let tail = model.channel_tail(node, Some(&[9]), [227, 227], &RunOptions::default(), Layout::Reference).unwrap();
    assert_eq!(tail.sliced_nodes(), ["features.7"]);
    let sliced = check(&model, "features.7", &[9, 30], 2, 227, 1.0, Layout::Reference);
    assert!(sliced.is_empty(), "{sliced:?}");
}

#[test]
fn each_image_may_have_its_own_channel() {
    let model = random("mobilenet_v2");
    // Four images, three channels among them (one twice): the tail computes the union for
    // every image, and each image's objective reads its own.
    let sliced = check(&model, "features.2.conv.1.2", &[40, 3, 90, 3], 4, 64, 10.0, Layout::Reference);
    assert_eq!(sliced, ["features.2.conv.0.0", "features.2.conv.1.0"]);
}

#[test]
fn channels_outside_the_node_are_refused() {
    let model = random("vgg11");
    let node = featvis::resolve_node(model.graph(), "features.18").unwrap();
    let result = model.channel_tail(node, Some(&[512]), [64, 64], &RunOptions::default(), Layout::Reference);
    assert!(result.is_err(), "channel 512 of 512 was accepted");
    let result = model.channel_tail(node, Some(&[]), [64, 64], &RunOptions::default(), Layout::Reference);
    assert!(result.is_err(), "no channel was accepted");
}

/// On pretrained Lite0, a step's objective and its gradient with respect to the spectrum
/// (the transforms, the resize and the normalisation included), computed each way a step can
/// run, against the reference step (whole node, PyTorch's kernels), on three spectra (the
/// first draw and two after Adam steps). The sliced tail agrees within 1e-5. The fast layout's
/// objective agrees within 1e-4, as plain forward's logits, but its gradient only within
/// `FAST_GRADIENT` (relative L2): the images are smooth, so on flat regions many pre-activations sit within rounding
/// of a ReLU6 kink, and which side they land on decides whether the gradient passes there.
/// The reference is as sensitive itself: scaling its input by 1 + 1e-7·noise moved its
/// gradient by up to 5e-3 (measured at `_blocks.3` and `_blocks.10` on smooth inputs); the
/// fast layout's moved by 3e-5 to 6e-3 here when this test was written.
#[test]
fn a_sliced_and_fast_step_follows_the_reference_step() {
    let spec = zoo::find("efficientnet_lite0").unwrap();
    let weights = convscope_core::paths::weights_dir().join("efficientnet_lite0.safetensors");
    let (model, _) = engine::load_model(&spec, &WeightsChoice::File(weights), Device::Cpu).unwrap();
    for (node, channels) in [("_blocks.3", vec![7, 20]), ("_blocks.10._swish", vec![40]), ("_swish_head", vec![3, 900])]
    {
        let node_id = featvis::resolve_node(model.graph(), node).unwrap();
        let pipeline = Pipeline::new(&model, &spec.preprocess, node_id, channels.clone()).unwrap();
        let fft = FftImage::new(channels.len() as i64, 3, 64, 64, Device::Cpu).unwrap();
        let mut spectrum = seeded(3, || fft.random_spectrum(Device::Cpu)).unwrap().set_requires_grad(true);
        let reference = Settings { fast_layout: false, sliced: false, ..Settings::default() };
        let mut adam = Adam::new(&spectrum, reference.lr).unwrap();
        let draws = [
            Draws { jitter8: (3, 5), scale: 1.05, angle: 4, jitter4: (2, 1) },
            Draws { jitter8: (7, 0), scale: 0.95, angle: -7, jitter4: (3, 0) },
            Draws { jitter8: (1, 6), scale: 1.1, angle: 0, jitter4: (0, 2) },
        ];
        for (step, d) in draws.iter().enumerate() {
            let (shown, grad) = featvis::objective_gradient(&pipeline, &fft, &spectrum, d, &reference).unwrap();
            let scale = norm(&grad);
            assert!(shown.abs() > 0.01 && scale > 1e-3, "{node} step {step}: activation {shown}, gradient {scale}");
            for (fast_layout, sliced, tolerance) in
                [(false, true, TOLERANCE), (true, false, FAST_GRADIENT), (true, true, FAST_GRADIENT)]
            {
                let settings = Settings { fast_layout, sliced, ..reference.clone() };
                let (ours, our_grad) = featvis::objective_gradient(&pipeline, &fft, &spectrum, d, &settings).unwrap();
                let what = format!("{node} step {step}, fast layout {fast_layout}, sliced {sliced}");
                let bound = if fast_layout { FAST_TOLERANCE } else { TOLERANCE };
                assert!((ours - shown).abs() <= bound * shown.abs(), "{what}: activation {ours} against {shown}");
                let apart = norm(&(&our_grad - &grad)) / scale;
                assert!(apart <= tolerance, "{what}: the gradient is {apart:e} apart");
            }
            adam.step(&mut spectrum, &grad).unwrap();
        }
    }
}

/// Adam divides each entry by its own running magnitude, so its first steps move every entry
/// by about lr whatever its gradient's size, and rounding that flips the sign of a near-zero
/// entry moves it by 2·lr: trajectories in different layouts part entry by entry. What they
/// reach does not: after 32 steps the fast, sliced run's objective is within 2% of the
/// reference run's. The sliced run in the reference layout stays within 1e-5 entry by entry.
#[test]
fn adam_runs_in_each_layout_reach_the_same_objective() {
    let spec = zoo::find("efficientnet_lite0").unwrap();
    let weights = convscope_core::paths::weights_dir().join("efficientnet_lite0.safetensors");
    let (model, _) = engine::load_model(&spec, &WeightsChoice::File(weights), Device::Cpu).unwrap();
    let node = featvis::resolve_node(model.graph(), "_blocks.3").unwrap();
    let run = |fast_layout: bool, sliced: bool| {
        let settings =
            Settings { steps: 32, size: 64, seed: 5, preview_every: 0, fast_layout, sliced, ..Settings::default() };
        let mut control = featvis::Control { progress: &mut |_| {}, interrupt: &|| false };
        featvis::visualize(&model, &spec.preprocess, node, &[7, 20], &settings, &mut control).unwrap().unwrap()
    };
    let reference = run(false, false);
    let sliced = run(false, true);
    let fast = run(true, true);
    let start = reference.curve[0];
    let end = reference.activations.iter().sum::<f64>();
    assert!(end > start + 1.0, "the reference run rose from {start} to {end} only");
    let apart = (&sliced.images - &reference.images).abs().max().double_value(&[]);
    assert!(apart <= TOLERANCE, "sliced, reference layout: the images are {apart:e} apart");
    let ours = fast.activations.iter().sum::<f64>();
    assert!((ours - end).abs() <= 0.02 * end.abs(), "fast and sliced: {ours} against the reference's {end}");
}
