//! `convscope gradients`: its mode, batch and objective, their defaults, and what it says when
//! the loss saturates.

mod common;

use common::{convscope, manifest_dir};

/// Runs convscope on one intra-op thread: the tests run side by side on few cores, where
/// libtorch's threads waiting on each other cost more than they bring.
fn run(args: &[&str]) -> String {
    let output = convscope().env("OMP_NUM_THREADS", "1").args(args).output().expect("the convscope binary runs");
    assert!(output.status.success(), "convscope {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&run(args)).unwrap()
}

fn norms(doc: &serde_json::Value) -> Vec<f64> {
    doc["nodes"].as_array().unwrap().iter().map(|n| n["grad_norm"].as_f64().unwrap()).collect()
}

#[test]
fn the_mode_and_batch_follow_the_weights_unless_asked() {
    let random = json(&["gradients", "resnet20", "--json"]);
    assert_eq!((random["mode"].as_str(), random["objective"].as_str()), (Some("training"), Some("loss")));
    assert_eq!(random["batch"]["kind"], "dataset");
    assert_eq!(random["batch"]["samples"], 128);
    assert_eq!(random["batch"]["counts"]["digits"], 127);
    let lenet = manifest_dir().join("weights/lenet5.safetensors");
    let trained = json(&["gradients", "lenet5", "--json", "--weights", lenet.to_str().unwrap()]);
    assert_eq!((trained["mode"].as_str(), trained["batch"]["kind"].as_str()), (Some("inference"), Some("image")));
    assert_eq!(trained["batch"]["samples"], 1);
    let asked =
        json(&["gradients", "resnet20", "--json", "--mode", "inference", "--batch", "dataset", "--batch-size", "9"]);
    assert_eq!((asked["mode"].as_str(), asked["batch"]["samples"].as_i64()), (Some("inference"), Some(9)));

    let text = run(&["gradients", "resnet20", "--batch", "image", "--objective", "logit"]);
    for line in ["mode: training", "batch of 1: the image alone", "objective: the target's logit", "‖∂z/∂out‖"]
    {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
}

/// ResNet-101's random weights in inference mode: untrained statistics let the activations
/// grow through depth until the softmax is saturated and the cross-entropy's gradient is
/// exactly zero. The command says so and points at the logit, whose gradient is there.
#[test]
fn a_saturated_loss_is_said_and_the_logit_is_offered() {
    let image = manifest_dir().join("assets/chelsea.png");
    let args = ["gradients", "resnet101", "--image", image.to_str().unwrap(), "--mode", "inference"];
    let saturated = json(&[&args[..], &["--json"]].concat());
    assert_eq!(saturated["saturated"], true);
    assert!(saturated["note"].as_str().unwrap().contains("--objective logit"), "{}", saturated["note"]);
    assert!(norms(&saturated).iter().all(|&n| n == 0.0));
    let text = run(&args);
    assert!(text.contains("note: the cross-entropy's gradient underflowed"), "{text}");

    let logit = json(&[&args[..], &["--json", "--objective", "logit"]].concat());
    assert_eq!(logit["saturated"], false);
    assert!(norms(&logit).iter().all(|&n| n > 0.0 && n.is_finite()));
    // In a training step, the same weights have a loss and a gradient at every layer.
    let training = json(&["gradients", "resnet101", "--json", "--image", image.to_str().unwrap(), "--batch-size", "2"]);
    assert_eq!(training["saturated"], false);
    assert!(norms(&training).iter().all(|&n| n > 0.0 && n.is_finite()));
}
