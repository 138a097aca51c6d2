//! LeNet live against the command line: a digit drawn on the pad, read by the pad's thread as
//! the app reads it, and the same digit saved as a PNG and given to `convscope classify` give
//! the same probabilities.

mod common;

use std::time::{Duration, Instant};

use common::*;
use convscope_core::drawing::worker::{DigitReply, DigitWorker, DrawnDigit};
use convscope_core::drawing::{Drawing, Transform};
use convscope_core::engine::WeightsChoice;

fn pad_reading(weights: &std::path::Path, canvas: Vec<u8>) -> Vec<f32> {
    let mut worker = DigitWorker::spawn(|| {}).unwrap();
    worker.load(WeightsChoice::File(weights.to_owned()));
    worker.read(DrawnDigit { generation: 1, canvas, transform: Transform::default() });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for reply in worker.poll() {
            match reply {
                DigitReply::Read(reading) => return reading.probabilities,
                DigitReply::Failed(message) => panic!("{message}"),
                _ => {}
            }
        }
        assert!(Instant::now() < deadline, "the pad's thread did not answer");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_drawn_digit_and_its_png_classified_by_the_cli_agree() {
    let weights = manifest_dir().join("weights/lenet5.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let mut drawing = Drawing::default();
    drawing.stroke(&[[6.0, 5.0], [21.0, 5.0], [18.0, 12.0], [13.0, 24.0]], false);
    drawing.stroke(&[[11.0, 14.0], [20.0, 14.0]], false);
    let canvas = drawing.pixels();
    let png = dir.path().join("drawn.png");
    image::GrayImage::from_raw(28, 28, canvas.clone()).unwrap().save(&png).unwrap();

    let pad = pad_reading(&weights, canvas);
    let args = [
        "classify",
        "lenet5",
        png.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "--reference-layout",
        "--json",
        "--top",
        "10",
    ];
    let json: serde_json::Value = serde_json::from_str(&stdout(&run_ok(&args))).unwrap();
    let top = json[0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 10);
    for entry in top {
        let class = entry["class"].as_u64().unwrap() as usize;
        let cli = entry["probability"].as_f64().unwrap();
        let drawn = f64::from(pad[class]);
        assert!((cli - drawn).abs() <= 1e-6, "class {class}: the CLI says {cli}, the pad {drawn}");
    }
    let best = top[0]["class"].as_u64().unwrap() as usize;
    assert!(pad.iter().all(|&p| p <= pad[best]), "the CLI's first class is the pad's: {pad:?}");
}
