//! The model zoo, one file per family, along the timeline of the CNN history:
//!
//! - 1998 `lenet`: LeNet-5, digits on postal mail (convscope's own reference).
//! - 2012 `alexnet`: torchvision's AlexNet and the paper's two-GPU layout with LRN.
//! - 2014 `vgg`: VGG-11/16/19, with and without batch norm.
//! - 2014–2015 `inception`: GoogLeNet and Inception v3, auxiliary classifiers included.
//! - 2015 `resnet`: ResNet-18/34/50/101/152 (torchvision) and the CIFAR ResNet-20/56 with
//!   their plain twins (He et al. 2016, §4.2).
//! - 2016 `inception_resnet`: Inception-ResNet v2 (timm), scaled residual adds.
//! - 2016 `squeezenet`: SqueezeNet 1.0 and 1.1, fire modules.
//! - 2017 `densenet`: DenseNet-121/169/201/161, dense links.
//! - 2017–2019 `mobilenet`: MobileNet v1 (timm, every width and resolution multiplier), v2, v3.
//! - 2018 `shufflenet`: ShuffleNet V2, channel split and shuffle.
//! - 2019–2020 `efficientnet`: EfficientNet-B0…B7 (torchvision) and EfficientNet-Lite0.
//!
//! Each family exposes its architectures as `ArchSpec`s: a builder returning the graph,
//! the card telling its story, the native input and the preprocessing its weights expect.

use std::sync::Arc;

use serde::Serialize;

use crate::error::Error;
use crate::graph::Graph;
use crate::preprocess::Preprocess;

pub mod alexnet;
pub mod densenet;
pub mod efficientnet;
pub mod inception;
pub mod inception_resnet;
pub mod lenet;
pub mod mobilenet;
pub mod resnet;
pub mod shufflenet;
pub mod squeezenet;
pub mod vgg;

/// The story of an architecture, shown by `list`, `summary` and the GUI's picker.
#[derive(Clone, Debug, Serialize)]
pub struct Card {
    pub name: &'static str,
    pub year: u16,
    pub authors: &'static str,
    pub paper: &'static str,
    pub problem: &'static str,
    pub answer: &'static str,
    /// ImageNet top-1 (%) as its paper reports it, where it does.
    pub top1_paper: Option<f32>,
    /// ImageNet top-1 (%) of the reference's pretrained weights, where they exist.
    pub top1_reference: Option<f32>,
    /// Where the names and numerics come from.
    pub reference: &'static str,
}

/// Which label set the logits index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Labels {
    ImageNet,
    Digits,
    Cifar10,
    /// Classes named by the data (a lab's image folder), in index order.
    Named(&'static [&'static str]),
}

impl Labels {
    pub fn name(self, class: i64) -> String {
        const CIFAR10: [&str; 10] =
            ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
        let label = match self {
            Labels::ImageNet => {
                usize::try_from(class).ok().and_then(|i| tch::vision::imagenet::CLASSES.get(i).copied())
            }
            Labels::Digits => return format!("digit {class}"),
            Labels::Cifar10 => usize::try_from(class).ok().and_then(|i| CIFAR10.get(i).copied()),
            Labels::Named(names) => usize::try_from(class).ok().and_then(|i| names.get(i).copied()),
        };
        label.map(str::to_owned).unwrap_or_else(|| format!("class {class}"))
    }
}

#[derive(Clone, Debug)]
pub struct ArchSpec {
    pub id: &'static str,
    pub card: Card,
    /// Native input `[channels, height, width]`.
    pub input: [i64; 3],
    pub preprocess: Preprocess,
    pub labels: Labels,
    pub build: Build,
}

/// How an architecture's graph is made: a zoo builder, or a member of the CIFAR family built
/// from its configuration (a network the lab trained).
#[derive(Clone, Copy, Debug)]
pub enum Build {
    Zoo(fn() -> Graph),
    Cifar(resnet::CifarConfig),
}

impl ArchSpec {
    /// An ImageNet classifier taking 224×224 crops of images resized to 256, torchvision's
    /// usual preprocessing.
    pub fn imagenet(id: &'static str, card: Card, build: fn() -> Graph) -> Self {
        Self {
            id,
            card,
            input: [3, 224, 224],
            preprocess: Preprocess::imagenet(256, 224),
            labels: Labels::ImageNet,
            build: Build::Zoo(build),
        }
    }

    pub fn graph(&self) -> Arc<Graph> {
        Arc::new(match self.build {
            Build::Zoo(build) => build(),
            Build::Cifar(config) => resnet::cifar(&config),
        })
    }
}

/// Every architecture, in timeline order.
pub fn all() -> Vec<ArchSpec> {
    let mut specs = Vec::new();
    specs.extend(lenet::specs());
    specs.extend(alexnet::specs());
    specs.extend(vgg::specs());
    specs.extend(inception::specs());
    specs.extend(resnet::specs());
    specs.extend(inception_resnet::specs());
    specs.extend(squeezenet::specs());
    specs.extend(densenet::specs());
    specs.extend(mobilenet::specs());
    specs.extend(shufflenet::specs());
    specs.extend(efficientnet::specs());
    specs.sort_by_key(|s| s.card.year);
    specs
}

pub fn find(id: &str) -> Result<ArchSpec, Error> {
    let specs = all();
    if let Some(spec) = specs.iter().find(|s| s.id == id) {
        return Ok(spec.clone());
    }
    let lowered = id.to_lowercase().replace('-', "_");
    let mut near: Vec<&str> = specs
        .iter()
        .map(|s| s.id)
        .filter(|known| known.contains(&lowered) || lowered.contains(known) || edit_distance(known, &lowered) <= 2)
        .collect();
    near.truncate(5);
    let hint = if near.is_empty() {
        "; `convscope list` shows them all".to_owned()
    } else {
        format!("; did you mean {}?", near.join(", "))
    };
    Err(Error::UnknownArch { name: id.to_owned(), hint })
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}
