//! The history as data: every architecture of the zoo with its year, family, paper, ImageNet
//! top-1 (the paper's and the reference weights'), parameters and MACs, for the accuracy
//! against cost chart (after Canziani et al. 2016), and the Pareto front of such a chart:
//! which networks were the best for their budget.

use serde::Serialize;

use crate::zoo::{self, ArchSpec, Labels};

/// The families of the zoo, one per file under `zoo/`, in timeline order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Family {
    LeNet,
    AlexNet,
    Vgg,
    Inception,
    ResNet,
    InceptionResNet,
    SqueezeNet,
    DenseNet,
    MobileNet,
    ShuffleNet,
    EfficientNet,
}

impl Family {
    pub const ALL: [Family; 11] = [
        Family::LeNet,
        Family::AlexNet,
        Family::Vgg,
        Family::Inception,
        Family::ResNet,
        Family::InceptionResNet,
        Family::SqueezeNet,
        Family::DenseNet,
        Family::MobileNet,
        Family::ShuffleNet,
        Family::EfficientNet,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::LeNet => "LeNet",
            Family::AlexNet => "AlexNet",
            Family::Vgg => "VGG",
            Family::Inception => "Inception",
            Family::ResNet => "ResNet",
            Family::InceptionResNet => "Inception-ResNet",
            Family::SqueezeNet => "SqueezeNet",
            Family::DenseNet => "DenseNet",
            Family::MobileNet => "MobileNet",
            Family::ShuffleNet => "ShuffleNet",
            Family::EfficientNet => "EfficientNet",
        }
    }

    /// The architectures of this family, as its zoo file registers them.
    pub fn specs(self) -> Vec<ArchSpec> {
        match self {
            Family::LeNet => zoo::lenet::specs(),
            Family::AlexNet => zoo::alexnet::specs(),
            Family::Vgg => zoo::vgg::specs(),
            Family::Inception => zoo::inception::specs(),
            Family::ResNet => zoo::resnet::specs(),
            Family::InceptionResNet => zoo::inception_resnet::specs(),
            Family::SqueezeNet => zoo::squeezenet::specs(),
            Family::DenseNet => zoo::densenet::specs(),
            Family::MobileNet => zoo::mobilenet::specs(),
            Family::ShuffleNet => zoo::shufflenet::specs(),
            Family::EfficientNet => zoo::efficientnet::specs(),
        }
    }

    /// The family an architecture belongs to.
    pub fn of(id: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.specs().iter().any(|s| s.id == id))
    }
}

/// Which ImageNet top-1 the chart reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Top1Source {
    /// As the paper reports it.
    #[default]
    Paper,
    /// Of the reference implementation's pretrained weights (torchvision's `acc@1`, timm's).
    Reference,
}

impl Top1Source {
    pub fn label(self) -> &'static str {
        match self {
            Top1Source::Paper => "paper's top-1",
            Top1Source::Reference => "reference weights' top-1",
        }
    }

    fn other(self) -> Self {
        match self {
            Top1Source::Paper => Top1Source::Reference,
            Top1Source::Reference => Top1Source::Paper,
        }
    }
}

/// One architecture on the chart.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub id: &'static str,
    pub name: &'static str,
    pub year: u16,
    pub family: Family,
    pub paper: &'static str,
    pub authors: &'static str,
    pub problem: &'static str,
    pub answer: &'static str,
    pub top1_paper: Option<f32>,
    pub top1_reference: Option<f32>,
    /// Whether it classifies ImageNet (LeNet reads digits, the CIFAR ResNets ten classes).
    pub imagenet: bool,
    /// Native input `[channels, height, width]`.
    pub input: [i64; 3],
    pub params: i64,
    /// At the native input; `None` if its shapes could not be inferred.
    pub macs: Option<i64>,
}

/// A top-1 figure and where it came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Top1 {
    pub percent: f32,
    pub source: Top1Source,
}

impl Entry {
    pub fn from_spec(spec: &ArchSpec, family: Family) -> Self {
        let graph = spec.graph();
        let macs = graph.infer_shapes(spec.input[1], spec.input[2]).ok().map(|r| r.total_macs());
        let card = &spec.card;
        Self {
            id: spec.id,
            name: card.name,
            year: card.year,
            family,
            paper: card.paper,
            authors: card.authors,
            problem: card.problem,
            answer: card.answer,
            top1_paper: card.top1_paper,
            top1_reference: card.top1_reference,
            imagenet: spec.labels == Labels::ImageNet,
            input: spec.input,
            params: graph.parameter_count(),
            macs,
        }
    }

    pub fn top1_from(&self, source: Top1Source) -> Option<f32> {
        match source {
            Top1Source::Paper => self.top1_paper,
            Top1Source::Reference => self.top1_reference,
        }
    }

    /// The top-1 from `preferred`, else from the other source (the chart marks which), else
    /// none: the network reports no ImageNet accuracy.
    pub fn top1(&self, preferred: Top1Source) -> Option<Top1> {
        if !self.imagenet {
            return None;
        }
        [preferred, preferred.other()]
            .into_iter()
            .find_map(|source| self.top1_from(source).map(|percent| Top1 { percent, source }))
    }

    /// The card's problem and answer, each cut to its first sentence: one line for a tooltip.
    pub fn story_line(&self) -> String {
        format!("{} — {}", first_sentence(self.problem, 110), first_sentence(self.answer, 110))
    }
}

/// Every architecture of the zoo, in timeline order, with its family.
pub fn entries() -> Vec<Entry> {
    let mut entries: Vec<Entry> = Family::ALL
        .into_iter()
        .flat_map(|family| family.specs().into_iter().map(move |spec| Entry::from_spec(&spec, family)))
        .collect();
    // The zoo's own order: by year, stable within it.
    let order: Vec<&'static str> = zoo::all().iter().map(|s| s.id).collect();
    entries.sort_by_key(|e| order.iter().position(|id| *id == e.id).unwrap_or(usize::MAX));
    entries
}

/// The text up to its first full stop (or colon), shortened at a word to `max_chars`.
pub fn first_sentence(text: &str, max_chars: usize) -> String {
    let cut = [". ", ": "].iter().filter_map(|end| text.find(end)).min().unwrap_or(text.len());
    let sentence = text[..cut].trim_end_matches('.').trim();
    if sentence.chars().count() <= max_chars {
        return sentence.to_owned();
    }
    let mut short: String = sentence.chars().take(max_chars).collect();
    if let Some(space) = short.rfind(' ') {
        short.truncate(space);
    }
    format!("{}…", short.trim_end_matches([',', ';']))
}

/// The points no other point beats: none is at most as costly and at least as accurate while
/// better in one of the two. Points are `(cost, accuracy)`; those with a NaN are ignored.
/// Returns their indices by rising cost: the staircase of the best accuracy for each budget.
/// With the year as the cost, the state of the art over time.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len()).filter(|&i| !points[i].0.is_nan() && !points[i].1.is_nan()).collect();
    // By cost, and at equal cost the most accurate first: it alone can be on the front.
    order.sort_by(|&a, &b| points[a].0.total_cmp(&points[b].0).then(points[b].1.total_cmp(&points[a].1)));
    let mut front = Vec::new();
    let mut best = f64::NEG_INFINITY;
    for i in order {
        if points[i].1 > best {
            best = points[i].1;
            front.push(i);
        }
    }
    front
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_keeps_the_best_accuracy_for_each_budget() {
        // (cost, top-1) of a hand-made table.
        let table = [
            (4.0, 76.0),     // 0: on the front
            (1.0, 57.0),     // 1: the cheapest, on the front
            (2.0, 55.0),     // 2: costlier and worse than 1
            (2.0, 70.0),     // 3: on the front
            (8.0, 76.0),     // 4: as good as 0 for twice the cost
            (16.0, 78.0),    // 5: on the front
            (3.0, f64::NAN), // 6: no accuracy
            (2.0, 70.0),     // 7: ties 3 exactly: one of the two is enough
            (0.5, 40.0),     // 8: worst but cheapest: on the front
        ];
        assert_eq!(pareto_front(&table), vec![8, 1, 3, 0, 5]);
        assert!(pareto_front(&[]).is_empty());
        assert_eq!(pareto_front(&[(1.0, 1.0)]), vec![0]);
    }

    #[test]
    fn the_chart_holds_every_architecture_once_with_its_family() {
        let entries = entries();
        let zoo: Vec<&str> = zoo::all().iter().map(|s| s.id).collect();
        let ids: Vec<&str> = entries.iter().map(|e| e.id).collect();
        assert_eq!(ids, zoo, "every zoo id, in the zoo's timeline order");
        assert!(entries.iter().all(|e| e.macs.is_some_and(|m| m > 0) && e.params > 0));
        let family = |id: &str| entries.iter().find(|e| e.id == id).map(|e| e.family);
        assert_eq!(family("resnet56"), Some(Family::ResNet));
        assert_eq!(family("mobilenet_v1_050_160"), Some(Family::MobileNet));
        assert_eq!(family("efficientnet_lite0"), Some(Family::EfficientNet));
        assert_eq!(Family::of("inception_resnet_v2"), Some(Family::InceptionResNet));
        assert_eq!(Family::of("nonet"), None);
        // The seed's figures, from the graphs.
        let params = |id: &str| entries.iter().find(|e| e.id == id).map(|e| e.params).unwrap_or(0);
        assert_eq!((params("vgg19") as f64 / 1e6).round(), 144.0);
        assert_eq!((params("resnet50") as f64 / 1e5).round(), 256.0);
    }

    #[test]
    fn top1_falls_back_to_the_other_source_and_only_for_imagenet() {
        let entries = entries();
        let get = |id: &str| entries.iter().find(|e| e.id == id).cloned().expect("known id");
        let alexnet = get("alexnet");
        assert_eq!(alexnet.top1(Top1Source::Reference).map(|t| t.source), Some(Top1Source::Reference));
        // torchvision's AlexNet has no paper figure of its own: the reference's is shown, marked.
        assert_eq!(alexnet.top1(Top1Source::Paper), Some(Top1 { percent: 56.522, source: Top1Source::Reference }));
        assert_eq!(get("lenet5").top1(Top1Source::Paper), None, "digits are not ImageNet");
        assert_eq!(get("resnet20").top1(Top1Source::Reference), None, "nor is CIFAR-10");
        assert_eq!(get("mobilenet_v1_075_160").top1(Top1Source::Paper), None, "no figure reported");
    }

    #[test]
    fn a_story_line_is_one_sentence_each() {
        let line = entries().into_iter().find(|e| e.id == "resnet50").map(|e| e.story_line()).unwrap_or_default();
        assert!(line.starts_with("Deeper plain networks trained worse"), "{line}");
        assert!(line.contains(" — An identity shortcut around every block"), "{line}");
        assert!(!line.contains('\n'));
        assert_eq!(first_sentence("Short. Then more.", 40), "Short");
        assert_eq!(first_sentence("one two three four", 9), "one two…");
    }
}
