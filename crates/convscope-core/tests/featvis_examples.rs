//! Top-activating examples and the receptive fields their crops come from: the fields of
//! LeNet-5 and VGG-16 against values computed by hand (the layer table in the docs of each
//! test), every spatial node of three networks against the shape inference's output sizes, and
//! the examples on the bundled digits under the trained LeNet-5 against a direct computation.

use std::cell::Cell;

use convscope_core::engine::{self, WeightsChoice};
use convscope_core::executor::RunOptions;
use convscope_core::featvis::examples::{self, ImageSet, Source, top_examples};
use convscope_core::featvis::{Control, receptive};
use convscope_core::zoo;
use tch::{Device, Kind, Tensor};

fn field(arch: &str, node: &str) -> receptive::Field {
    let graph = zoo::find(arch).unwrap().graph();
    let id = graph.node_id(node).unwrap_or_else(|| panic!("{arch} has no {node}"));
    receptive::fields(&graph)[id].unwrap_or_else(|| panic!("{arch} {node}: no field"))
}

#[test]
fn lenet_fields_match_the_hand_computed_ones() {
    // conv1 5×5: 5 px, jump 1, first centre 2; pool 2/2: 6, 2, 2.5; conv2 5×5: 6 + 4·2 = 14,
    // 2, 2.5 + 2·2 = 6.5; pool: 16, 4, 7.5; conv3 5×5: 16 + 4·4 = 32, 4, 15.5 (the whole
    // 32-pixel input, centred).
    let expected = [
        ("conv1", 5, 1, 2.0),
        ("pool1", 6, 2, 2.5),
        ("conv2", 14, 2, 6.5),
        ("pool2", 16, 4, 7.5),
        ("conv3", 32, 4, 15.5),
    ];
    for (node, size, jump, start) in expected {
        let f = field("lenet5", node);
        assert_eq!((f.size, f.jump, f.start, f.global), ([size; 2], [jump; 2], [start; 2], false), "{node}");
    }
}

#[test]
fn vgg16_fields_match_the_hand_computed_ones() {
    // 3×3 convolutions padded by 1 add 2 jumps and keep the centre; 2×2 pools add one jump,
    // double it and move the centre half a jump: conv2_2 14 px (jump 2), conv3_3 40 (4),
    // conv4_3 92 (8), conv5_3 196 (16), pool5 212 (32); centres 0.5, 1.5, 3.5, 7.5, 15.5.
    let expected = [
        ("features.8", 14, 2, 0.5),
        ("features.15", 40, 4, 1.5),
        ("features.22", 92, 8, 3.5),
        ("features.29", 196, 16, 7.5),
        ("features.30", 212, 32, 15.5),
    ];
    for (node, size, jump, start) in expected {
        let f = field("vgg16", node);
        assert_eq!((f.size, f.jump, f.start), ([size; 2], [jump; 2], [start; 2]), "{node}");
    }
    // Crops cut at the image's edges: conv5_3's corner positions at 224 × 224.
    let f = field("vgg16", "features.29");
    assert_eq!(f.crop([0, 0], [224, 224]), [0, 0, 105, 105]);
    assert_eq!(f.crop([13, 13], [224, 224]), [118, 118, 223, 223]);
    assert_eq!(f.crop([6, 0], [224, 224]), [0, 6, 105, 201]);
    // After the global pooling every position sees the whole image.
    let pooled = field("vgg16", "avgpool");
    assert!(pooled.global);
    assert_eq!(pooled.crop([0, 0], [224, 224]), [0, 0, 223, 223]);
}

#[test]
fn fields_agree_with_the_shape_inference_on_every_spatial_node() {
    // With the same padding P on both sides (P = (size − 1)/2 − first centre), a field of
    // `size` moved by `jump` fits (H + 2P − size)/jump + 1 times: the node's output size.
    for arch in ["lenet5", "vgg16", "resnet18"] {
        let spec = zoo::find(arch).unwrap();
        let graph = spec.graph();
        let [h, w] = spec.preprocess.output_size();
        let shapes = graph.infer_shapes(h, w).unwrap();
        let fields = receptive::fields(&graph);
        let mut checked = 0;
        for (id, node) in graph.nodes.iter().enumerate() {
            let (Some(f), [_, oh, ow]) = (fields[id], shapes.nodes[id].shape.as_slice()) else { continue };
            if f.global {
                continue;
            }
            for (a, (input, output)) in [(h, *oh), (w, *ow)].into_iter().enumerate() {
                let pad = (f.size[a] - 1) as f64 / 2.0 - f.start[a];
                assert_eq!(pad.fract(), 0.0, "{arch} {}: padding {pad}", node.name);
                let fits = (input + 2 * pad as i64 - f.size[a]).div_euclid(f.jump[a]) + 1;
                assert_eq!(fits, output, "{arch} {}: axis {a}, field {f:?}", node.name);
            }
            checked += 1;
        }
        assert!(checked >= 9, "{arch}: only {checked} nodes checked");
    }
}

#[test]
fn top_examples_rank_the_digits_by_each_channels_largest_value() {
    let spec = zoo::find("lenet5").unwrap();
    let weights = convscope_core::paths::weights_dir().join("lenet5.safetensors");
    assert!(weights.is_file(), "{} is missing", weights.display());
    let (model, _) = engine::load_model(&spec, &WeightsChoice::File(weights), Device::Cpu).unwrap();
    let inputs: Vec<Tensor> = (0..10)
        .map(|d| engine::image_input(&spec, &convscope_core::paths::asset(&format!("digits/digit_{d}.png"))).unwrap())
        .collect();
    // conv2, before tanh2 saturates: values that differ between digits.
    let node = model.graph().node_id("conv2").unwrap();
    let channels = [0i64, 7, 15];
    let mut seen = Vec::new();
    let mut control = Control { progress: &mut |p| seen.push((p.step, p.steps)), interrupt: &|| false };
    let ranked = top_examples(&model, node, &inputs, &channels, 4, &mut control).unwrap().unwrap();
    assert_eq!(seen.last(), Some(&(10, 10)));
    assert_eq!(ranked.len(), 3);
    let field = receptive::fields(model.graph())[node].unwrap();
    for (examples, &channel) in ranked.iter().zip(&channels) {
        assert_eq!(examples.len(), 4);
        // Each image's largest value, straight from the node's output.
        let direct: Vec<(f64, usize)> = inputs
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let out = model.forward_to(x, &RunOptions::default(), node).unwrap();
                (out.get(0).get(channel).max().to_kind(Kind::Double).double_value(&[]), i)
            })
            .collect();
        let mut best = direct.clone();
        best.sort_by(|a, b| b.0.total_cmp(&a.0));
        let ours: Vec<(f64, usize)> = examples.iter().map(|e| (e.value, e.image)).collect();
        assert_eq!(ours, best[..4].to_vec(), "channel {channel}");
        for e in examples {
            let out = model.forward_to(&inputs[e.image], &RunOptions::default(), node).unwrap();
            let at =
                out.get(0).get(channel).get(e.position[0]).get(e.position[1]).to_kind(Kind::Double).double_value(&[]);
            assert_eq!(at, e.value, "the position holds the value");
            assert_eq!(e.crop, field.crop(e.position, [32, 32]));
            let [x0, y0, x1, y1] = e.crop;
            assert!(0 <= x0 && x0 <= x1 && x1 < 32 && 0 <= y0 && y0 <= y1 && y1 < 32, "{:?}", e.crop);
            // conv2's field is 14 px: a crop is that, or cut by an edge.
            assert!(x1 - x0 < 14 && y1 - y0 < 14);
        }
        // Values differ between images: the ranking means something.
        assert!(best[0].0 - best[9].0 > 0.5, "channel {channel}: {best:?}");
    }

    // Stopped after three images: no answer.
    let asked = Cell::new(0);
    let mut control = Control {
        progress: &mut |_| {},
        interrupt: &|| {
            asked.set(asked.get() + 1);
            asked.get() > 3
        },
    };
    assert!(top_examples(&model, node, &inputs, &channels, 4, &mut control).unwrap().is_none());
    let mut control = Control { progress: &mut |_| {}, interrupt: &|| false };
    let error = top_examples(&model, node, &inputs, &[16], 4, &mut control).err().unwrap().to_string();
    assert!(error.contains("no channel 16"), "{error}");
    let fc = model.graph().node_id("fc1").unwrap();
    let error = top_examples(&model, fc, &inputs, &[0], 4, &mut control).err().unwrap().to_string();
    assert!(error.contains("flat"), "{error}");
}

/// A folder searched as an `ImageSet` (each image read when the search reaches it, the best
/// few kept as it goes) ranks as `top_examples` over every input read first, and its strip is
/// made from the same crops.
#[test]
fn a_folder_read_image_by_image_ranks_as_the_images_read_at_once() {
    let spec = zoo::find("lenet5").unwrap();
    let weights = convscope_core::paths::weights_dir().join("lenet5.safetensors");
    let (model, _) = engine::load_model(&spec, &WeightsChoice::File(weights), Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // 25 files, so keeping the best 3 prunes the list (at 6) several times on the way.
    for i in 0..25 {
        let digit = convscope_core::paths::asset(&format!("digits/digit_{}.png", (i * 7) % 10));
        std::fs::copy(digit, dir.path().join(format!("{i:02}.png"))).unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
    let source = Source::Folder(dir.path().to_owned());
    let set = ImageSet::open(&spec, &source).unwrap();
    assert_eq!(set.len(), 25, "the text file is not an image");
    let (names, inputs) = examples::inputs(&spec, &source).unwrap();
    assert_eq!(names, set.names());
    let node = model.graph().node_id("conv2").unwrap();
    let channels = [0i64, 7, 15];
    let mut seen = Vec::new();
    let mut control = Control { progress: &mut |p| seen.push((p.step, p.steps)), interrupt: &|| false };
    let lazy = examples::top_examples_in(&model, node, &set, &channels, 3, &mut control).unwrap().unwrap();
    assert_eq!(seen, (1..=25).map(|i| (i, 25)).collect::<Vec<_>>(), "progress after every image");
    let mut control = Control { progress: &mut |_| {}, interrupt: &|| false };
    let eager = top_examples(&model, node, &inputs, &channels, 3, &mut control).unwrap().unwrap();
    assert_eq!(lazy, eager);
    // The same digit in several files ties: the earlier file ranks first.
    assert!(lazy.iter().all(|e| e.len() == 3 && e.windows(2).all(|w| w[0].value >= w[1].value)));
    let from_set = examples::strip_in(&set, &lazy[1], 32).unwrap();
    let from_inputs = examples::strip(&spec.preprocess, &inputs, &eager[1], 32).unwrap();
    assert_eq!(from_set, from_inputs);
}
