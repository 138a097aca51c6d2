//! The three architectures no library implements (LeNet-5, the CIFAR ResNets of He et al.
//! §4.2, the two-GPU AlexNet of 2012) are checked in the parity suite against PyTorch twins
//! written for these tests. A twin shows that convscope computes what the twin computes, not
//! that either is the paper; this file checks the figures the papers themselves publish.

use convscope_core::graph::Graph;
use convscope_core::shapes::ShapeReport;
use convscope_core::zoo::{self, resnet::CifarConfig};

fn report(graph: &Graph, side: i64) -> ShapeReport {
    graph.infer_shapes(side, side).expect("the paper's input size fits")
}

fn node<'a>(graph: &Graph, report: &'a ShapeReport, name: &str) -> &'a convscope_core::shapes::NodeInfo {
    let id = graph.node_id(name).unwrap_or_else(|| panic!("{}: no node {name}", graph.arch));
    &report.nodes[id]
}

fn weight_shape(graph: &Graph, key: &str) -> Vec<i64> {
    graph.params.iter().find(|p| p.key == key).unwrap_or_else(|| panic!("{}: no {key}", graph.arch)).shape.clone()
}

#[test]
fn lenet5_has_the_papers_layers_where_it_follows_the_paper() {
    // LeCun et al. 1998, §II.B: C1 "156 trainable parameters, and 122,304 connections"; C5
    // "48,120 trainable connections"; F6 "10,164 trainable parameters". The paper counts a bias
    // as a connection, so connections = (MACs + biases) at every output position.
    let graph = zoo::find("lenet5").unwrap().graph();
    let report = report(&graph, 32);
    let c1 = node(&graph, &report, "conv1");
    assert_eq!(c1.params, 156);
    assert_eq!(c1.shape, [6, 28, 28], "C1: six 28×28 feature maps");
    assert_eq!(c1.macs + 6 * 28 * 28, 122_304);
    let c5 = node(&graph, &report, "conv3");
    assert_eq!(c5.params, 48_120);
    assert_eq!(c5.shape, [120, 1, 1], "C5: 120 maps of 1×1");
    assert_eq!(node(&graph, &report, "fc1").params, 10_164);
    // Where it departs, deliberately, as every modern LeNet-5 does: C3 connects every S2 map
    // (16 × (6·25 + 1) = 2,416 parameters, not the paper's 1,516 through its Table I), the
    // subsampling layers have no trainable coefficient, and the output is a linear layer (850
    // parameters) rather than 84 × 10 Euclidean RBF units (840). Hence 61,706 against the
    // paper's "about 60,000".
    assert_eq!(node(&graph, &report, "conv2").params, 2_416);
    assert_eq!(node(&graph, &report, "fc2").params, 850);
    assert_eq!(report.total_params(), 61_706);
}

#[test]
fn cifar_resnets_have_table_6s_parameters_and_depths() {
    // He et al. 2015, Table 6 (CIFAR-10): parameters of ResNet-20/32/44/56/110, to the
    // precision the paper prints them; §4.2: 6n+2 weighted layers, feature maps 32, 16, 8 with
    // 16, 32, 64 filters. Option-A shortcuts add no parameter, so the plain nets have the same.
    for (blocks, printed_millions) in [(3, 0.27), (5, 0.46), (7, 0.66), (9, 0.85), (18, 1.7)] {
        for residual in [true, false] {
            let config = CifarConfig::paper(blocks, residual);
            let graph = zoo::resnet::cifar(&config);
            let report = report(&graph, 32);
            let millions = report.total_params() as f64 / 1e6;
            let printed_digits = if printed_millions < 1.0 { 100.0 } else { 10.0 };
            assert_eq!(
                (millions * printed_digits).round() / printed_digits,
                printed_millions,
                "{}: {} parameters",
                graph.arch,
                report.total_params()
            );
            let weighted = graph.params.iter().filter(|p| p.shape.len() >= 2).count();
            assert_eq!(weighted, config.depth(), "{}: 6n+2 weighted layers", graph.arch);
            let last_stage = format!("layer3.{}.conv2", blocks - 1);
            assert_eq!(node(&graph, &report, "layer1.0.conv1").shape, [16, 32, 32]);
            assert_eq!(node(&graph, &report, "layer2.0.conv1").shape, [32, 16, 16]);
            assert_eq!(node(&graph, &report, &last_stage).shape, [64, 8, 8]);
        }
    }
    // The zoo's ids are the paper's networks.
    for (id, blocks, residual) in
        [("resnet20", 3, true), ("resnet56", 9, true), ("plain20", 3, false), ("plain56", 9, false)]
    {
        let zoo_graph = zoo::find(id).unwrap().graph();
        let paper = zoo::resnet::cifar(&CifarConfig::paper(blocks, residual));
        let keys = |g: &Graph| g.params.iter().map(|p| (p.key.clone(), p.shape.clone())).collect::<Vec<_>>();
        assert_eq!(keys(&zoo_graph), keys(&paper), "{id}");
    }
}

#[test]
fn alexnet_2012_has_the_papers_kernels_and_sizes() {
    // Krizhevsky et al. 2012, §3.5: "The first convolutional layer filters the 224×224×3 input
    // image with 96 kernels of size 11×11×3 with a stride of 4 pixels"; the second has 256
    // kernels of 5×5×48, the third 384 of 3×3×256 (connected across the two GPUs), the fourth
    // 384 of 3×3×192, the fifth 256 of 3×3×192; the fully connected layers have 4096 neurons
    // each, then the 1000-way softmax. The 224 of the text gives 54.25: the 55×55 maps of
    // Figure 2 need 227, the size torchvision and this twin take.
    let graph = zoo::find("alexnet_2012").unwrap().graph();
    let kernels = [
        ("features.0.weight", [96, 3, 11, 11]),
        ("features.4.weight", [256, 48, 5, 5]),
        ("features.8.weight", [384, 256, 3, 3]),
        ("features.10.weight", [384, 192, 3, 3]),
        ("features.12.weight", [256, 192, 3, 3]),
    ];
    for (key, shape) in kernels {
        assert_eq!(weight_shape(&graph, key), shape, "{key}");
    }
    assert_eq!(weight_shape(&graph, "classifier.1.weight"), [4096, 256 * 6 * 6]);
    assert_eq!(weight_shape(&graph, "classifier.4.weight"), [4096, 4096]);
    assert_eq!(weight_shape(&graph, "classifier.6.weight"), [1000, 4096]);

    // Abstract: "60 million parameters and 650,000 neurons"; §3.5 lists the neurons of each
    // layer after the first: 186,624–64,896–64,896–43,264–4096–4096–1000. Its first figure,
    // 253,440, is not 96 maps of 55×55 (290,400), a known slip of the paper; the total is
    // about 650,000 either way.
    let report = report(&graph, 227);
    assert_eq!(node(&graph, &report, "features.0").shape, [96, 55, 55], "Figure 2: 55×55 maps");
    let params = report.total_params() as f64;
    assert!((60e6..61e6).contains(&params), "{params} parameters");
    let neurons: Vec<i64> = graph
        .nodes
        .iter()
        .zip(&report.nodes)
        .filter(|(_, info)| info.params > 0)
        .map(|(_, info)| info.shape.iter().product::<i64>())
        .collect();
    assert_eq!(neurons, [290_400, 186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000]);
    let total: i64 = neurons.iter().sum();
    assert!((600_000..700_000).contains(&total), "{total} neurons");
}
