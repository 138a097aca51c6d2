//! AlexNet (Krizhevsky, Sutskever, Hinton 2012) in two layouts.
//!
//! - `alexnet`: torchvision's, which follows Krizhevsky's 2014 "One weird trick" single-GPU
//!   variant (64/192/384/256/256 maps, no local response normalisation, no grouped
//!   convolutions, an adaptive 6×6 average pool so other input sizes fit). Its pretrained
//!   weights exist.
//! - `alexnet_2012`: the 2012 paper's layout on 227×227 (96/256/384/384/256 maps, local
//!   response normalisation after the first two convolutions, the two-GPU split as groups=2
//!   on conv2, conv4 and conv5). No public weights: random initialisation only; its PyTorch
//!   twin lives in tests/fixtures/cases_classic.py.
//!
//! Names follow torchvision's `nn.Sequential` indices: `features.0` … `features.12` (14 in the
//! 2012 layout), `avgpool`, `classifier.0` … `classifier.6`; the flatten between them is `flatten`.

use crate::graph::{BlockKind, Conv2d, Graph, GraphBuilder, NodeId, Op, Pool2d};
use crate::preprocess::Preprocess;
use crate::zoo::{ArchSpec, Build, Card, Labels};

const AUTHORS: &str = "Alex Krizhevsky, Ilya Sutskever, Geoffrey E. Hinton";
const PAPER: &str = "ImageNet Classification with Deep Convolutional Neural Networks";
const PROBLEM: &str = "Convolutional networks had waited some fifteen years for enough labelled data and \
     compute: could a large one, trained on ImageNet's 1.2 million images, beat hand-engineered features?";

pub fn specs() -> Vec<ArchSpec> {
    vec![
        ArchSpec {
            id: "alexnet",
            card: Card {
                name: "AlexNet (single GPU)",
                year: 2012,
                authors: AUTHORS,
                paper: PAPER,
                problem: PROBLEM,
                answer: "Five convolutional and three fully connected layers trained on GPUs, with ReLU for \
                         fast training, dropout against overfitting and overlapping max pooling. This is \
                         torchvision's single-GPU variant from Krizhevsky's 2014 \"One weird trick\" paper: \
                         64/192/384/256/256 maps, no local response normalisation, no two-GPU split.",
                // The 2012 paper's figures belong to the two-GPU layout (`alexnet_2012`).
                top1_paper: None,
                top1_reference: Some(56.522),
                reference: "torchvision.models.alexnet (after arXiv:1404.5997, \"One weird trick for \
                            parallelizing convolutional neural networks\")",
            },
            input: [3, 224, 224],
            preprocess: Preprocess::imagenet(256, 224),
            labels: Labels::ImageNet,
            build: Build::Zoo(alexnet),
        },
        ArchSpec {
            id: "alexnet_2012",
            card: Card {
                name: "AlexNet (2012, two GPUs)",
                year: 2012,
                authors: AUTHORS,
                paper: PAPER,
                problem: PROBLEM,
                answer: "Five convolutional and three fully connected layers (96/256/384/384/256 maps, \
                         4096-4096-1000), ReLU, dropout, overlapping 3×3 pooling with stride 2 and local \
                         response normalisation; the net was split across two GTX 580 GPUs, which here is \
                         groups=2 on the convolutions that saw only their own GPU's maps (2, 4 and 5).",
                // ILSVRC-2012 validation, one CNN: 40.7% top-1 error (the paper's Table 2).
                top1_paper: Some(59.3),
                top1_reference: None,
                reference: "convscope's own, after the paper; random weights only \
                            (tests/fixtures/cases_classic.py holds the PyTorch twin)",
            },
            input: [3, 227, 227],
            preprocess: Preprocess::imagenet(256, 227),
            labels: Labels::ImageNet,
            build: Build::Zoo(alexnet_2012),
        },
    ]
}

fn max_pool() -> Op {
    Op::MaxPool2d(Pool2d::new(3, 2))
}

/// `classifier.0` … `classifier.6`: dropout, 4096, ReLU, dropout, 4096, ReLU, 1000.
fn classifier(g: &mut GraphBuilder, in_features: i64, x: NodeId) -> NodeId {
    g.begin_block("classifier", BlockKind::Classifier);
    let x = g.add("classifier.0", Op::Dropout { p: 0.5 }, &[x]);
    let x = g.linear("classifier.1", in_features, 4096, x);
    let x = g.relu("classifier.2", x);
    let x = g.add("classifier.3", Op::Dropout { p: 0.5 }, &[x]);
    let x = g.linear("classifier.4", 4096, 4096, x);
    let x = g.relu("classifier.5", x);
    let x = g.linear("classifier.6", 4096, 1000, x);
    g.end_block();
    x
}

pub fn alexnet() -> Graph {
    let (mut g, x) = GraphBuilder::new("alexnet", 3);
    g.begin_block("features", BlockKind::Features);
    let x = g.conv("features.0", Conv2d::new(3, 64, 11).stride(4).padding(2), x);
    let x = g.relu("features.1", x);
    let x = g.add("features.2", max_pool(), &[x]);
    let x = g.conv("features.3", Conv2d::new(64, 192, 5).padding(2), x);
    let x = g.relu("features.4", x);
    let x = g.add("features.5", max_pool(), &[x]);
    let x = g.conv("features.6", Conv2d::new(192, 384, 3).padding(1), x);
    let x = g.relu("features.7", x);
    let x = g.conv("features.8", Conv2d::new(384, 256, 3).padding(1), x);
    let x = g.relu("features.9", x);
    let x = g.conv("features.10", Conv2d::new(256, 256, 3).padding(1), x);
    let x = g.relu("features.11", x);
    let x = g.add("features.12", max_pool(), &[x]);
    g.end_block();

    g.begin_block("head", BlockKind::Head);
    let x = g.add("avgpool", Op::AdaptiveAvgPool2d { output: [6, 6] }, &[x]);
    let x = g.add("flatten", Op::Flatten, &[x]);
    let x = classifier(&mut g, 256 * 6 * 6, x);
    g.end_block();
    g.finish(x)
}

pub fn alexnet_2012() -> Graph {
    let (mut g, x) = GraphBuilder::new("alexnet_2012", 3);
    // The paper's constants (k = 2, n = 5, α = 1e-4, β = 0.75) sum α·a² over the neighbours;
    // PyTorch's formula, which the op follows, divides α by n, hence α·n here.
    let lrn = || Op::LocalResponseNorm { size: 5, alpha: 1e-4 * 5.0, beta: 0.75, k: 2.0 };
    g.begin_block("features", BlockKind::Features);
    let x = g.conv("features.0", Conv2d::new(3, 96, 11).stride(4), x);
    let x = g.relu("features.1", x);
    let x = g.add("features.2", lrn(), &[x]);
    let x = g.add("features.3", max_pool(), &[x]);
    // Each GPU held half the maps; conv2, conv4 and conv5 read only their own GPU's half.
    let x = g.conv("features.4", Conv2d::new(96, 256, 5).padding(2).groups(2), x);
    let x = g.relu("features.5", x);
    let x = g.add("features.6", lrn(), &[x]);
    let x = g.add("features.7", max_pool(), &[x]);
    let x = g.conv("features.8", Conv2d::new(256, 384, 3).padding(1), x);
    let x = g.relu("features.9", x);
    let x = g.conv("features.10", Conv2d::new(384, 384, 3).padding(1).groups(2), x);
    let x = g.relu("features.11", x);
    let x = g.conv("features.12", Conv2d::new(384, 256, 3).padding(1).groups(2), x);
    let x = g.relu("features.13", x);
    let x = g.add("features.14", max_pool(), &[x]);
    g.end_block();

    // 227 → 55 → 27 → 13 → 6: the paper's 6×6×256 reaches the classifier without a resampling pool.
    g.begin_block("head", BlockKind::Head);
    let x = g.add("flatten", Op::Flatten, &[x]);
    let x = classifier(&mut g, 256 * 6 * 6, x);
    g.end_block();
    g.finish(x)
}
