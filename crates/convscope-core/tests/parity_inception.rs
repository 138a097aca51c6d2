//! Parity of GoogLeNet and Inception v3 with torchvision, and of Inception-ResNet v2 with timm
//! (see common/parity.rs and tests/fixtures/cases_inception.py), plus their published size
//! and cost.

mod common;

use common::parity::check_arch;

#[test]
fn googlenet_matches_torchvision() {
    check_arch("googlenet");
}

#[test]
fn inception_v3_matches_torchvision() {
    check_arch("inception_v3");
}

#[test]
fn inception_resnet_v2_matches_timm() {
    check_arch("inception_resnet_v2");
}

/// Parameters of the classifier proper (auxiliary classifiers excluded, as torchvision's
/// GoogLeNet weights drop them) and all parameters, plus MACs at the native size without the
/// auxiliary classifiers (which do not run at inference, when the figures are measured).
fn size_and_cost(id: &str) -> (i64, i64, i64) {
    let spec = convscope_core::zoo::find(id).unwrap();
    let graph = spec.graph();
    let [_, h, w] = spec.input;
    let report = graph.infer_shapes(h, w).unwrap();
    let main_params = graph.params.iter().filter(|p| p.trainable && !graph.nodes[p.node].aux);
    let main_params = main_params.map(|p| p.shape.iter().product::<i64>()).sum();
    let macs = graph.nodes.iter().zip(&report.nodes).filter(|(n, _)| !n.aux).map(|(_, info)| info.macs).sum();
    (main_params, graph.parameter_count(), macs)
}

#[test]
fn parameters_and_macs_match_the_references() {
    // (id, parameters as the reference counts them, with auxiliary classifiers?, GMACs)
    let table: [(&str, i64, bool, f64); 3] = [
        // torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1.meta: num_params 6624904 (the
        // pretrained model as returned, auxiliary classifiers dropped), _ops 1.498.
        ("googlenet", 6_624_904, false, 1.498),
        // torchvision.models.Inception_V3_Weights.IMAGENET1K_V1.meta: num_params 27161264 (the
        // pretrained model keeps AuxLogits), _ops 5.713.
        ("inception_v3", 27_161_264, true, 5.713),
        // timm publishes no figures for this model. Computed with the reference in Python:
        // sum(p.numel() for p in timm.create_model("inception_resnet_v2").parameters()) = 55843464,
        // and torch.utils.flop_counter.FlopCounterMode on one 3×299×299 image in eval mode
        // counts 26311588032 FLOPs, i.e. 13155794016 multiply-accumulates.
        ("inception_resnet_v2", 55_843_464, true, 13.155_794_016),
    ];
    for (id, params, with_aux, gmacs) in table {
        let (main_params, all_params, macs) = size_and_cost(id);
        assert_eq!(if with_aux { all_params } else { main_params }, params, "{id}: parameters");
        let ours = macs as f64 / 1e9;
        assert!((ours - gmacs).abs() <= 0.02 * gmacs, "{id}: {ours:.3} GMACs vs the reference's {gmacs}");
    }
    // GoogLeNet as torchvision builds it for its weights also holds both side classifiers:
    // 13004888 parameters in all (counted on torchvision.models.googlenet(aux_logits=True)).
    assert_eq!(size_and_cost("googlenet").1, 13_004_888);
}

/// The auxiliary classifiers run in training, and only then, like torchvision's
/// (`if self.training: aux = self.aux1(x)`), and give one score per class.
#[test]
fn auxiliary_classifiers_run_in_training_only() {
    use convscope_core::executor::{Model, RunOptions, seeded};
    for (id, aux_names) in [("googlenet", &["aux1.fc2", "aux2.fc2"][..]), ("inception_v3", &["AuxLogits.fc"][..])] {
        let spec = convscope_core::zoo::find(id).unwrap();
        let graph = spec.graph();
        let aux: Vec<usize> = aux_names.iter().map(|n| graph.node_id(n).unwrap()).collect();
        assert_eq!(graph.aux_outputs, aux, "{id}: auxiliary outputs");
        let model = Model::random(graph.clone(), tch::Device::Cpu, 0).unwrap();
        let [c, h, w] = spec.input;
        // Two samples: batch norm in training normalises over the batch. The input and the
        // training run's dropout draw from libtorch's one generator, which the parity tests
        // beside this one reseed to regenerate their weights: both draw under its lock.
        let input = seeded(1, || tch::Tensor::randn([2, c, h, w], (tch::Kind::Float, tch::Device::Cpu)));
        for train in [true, false] {
            let capture =
                seeded(2, || model.forward_capture(&input, &RunOptions { train, ..RunOptions::default() })).unwrap();
            assert_eq!(capture.logits.size(), [2, 1000]);
            for &node in &aux {
                let out = capture.outputs.get(node).unwrap();
                if train {
                    assert_eq!(
                        out.map(|t| t.size()),
                        Some(vec![2, 1000]),
                        "{id}: {} in training",
                        graph.nodes[node].name
                    );
                } else {
                    assert!(out.is_none(), "{id}: {} ran in eval", graph.nodes[node].name);
                }
            }
        }
    }
}
