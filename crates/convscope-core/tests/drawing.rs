//! LeNet live in the engine: a drawn digit is the digit `convscope classify` reads from a PNG,
//! MNIST's own digits pass the normalisation unchanged, the held-out mistakes are the ones
//! the accuracy counts, and the pad's thread reads, coalesces and trains.

mod common;

use std::time::{Duration, Instant};

use common::*;
use convscope_core::drawing::worker::{DigitReply, DigitWorker, DrawnDigit, SWEEP_SHIFTS};
use convscope_core::drawing::{self, Drawing, Transform};
use convscope_core::engine::{self, WeightsChoice};
use convscope_core::executor::{Model, RunOptions};
use convscope_core::manifest::Manifest;
use convscope_core::preprocess::{MNIST_MEAN, MNIST_STD, digit_pixels};
use convscope_core::train::{self, TrainConfig, TrainProgress};
use convscope_core::zoo;
use tch::{Device, Kind, Tensor};

fn shipped() -> Model {
    let spec = zoo::find("lenet5").unwrap();
    let path = manifest_dir().join("weights/lenet5.safetensors");
    engine::load_model(&spec, &WeightsChoice::File(path), Device::Cpu).unwrap().0
}

fn probabilities(model: &Model, input: &Tensor) -> Vec<f32> {
    let logits = model.forward(input, &RunOptions::default()).unwrap();
    Vec::<f32>::try_from(logits.softmax(-1, Kind::Float).flatten(0, -1)).unwrap()
}

fn argmax(p: &[f32]) -> usize {
    (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap()
}

fn seven() -> Drawing {
    let mut drawing = Drawing::default();
    drawing.stroke(&[[6.0, 5.0], [21.0, 5.0], [18.0, 12.0], [13.0, 24.0]], false);
    drawing
}

fn one() -> Drawing {
    let mut drawing = Drawing::default();
    drawing.stroke(&[[14.0, 3.0], [14.0, 25.0]], false);
    drawing
}

fn zero() -> Drawing {
    let loop_points: Vec<[f32; 2]> = (0..=40)
        .map(|i| {
            let t = i as f32 / 40.0 * std::f32::consts::TAU;
            [14.0 + 7.0 * t.sin(), 14.0 - 10.0 * t.cos()]
        })
        .collect();
    let mut drawing = Drawing::default();
    drawing.stroke(&loop_points, false);
    drawing
}

#[test]
fn a_drawn_digit_reads_as_the_same_digit_saved_as_png_and_classified() {
    let model = shipped();
    let spec = zoo::find("lenet5").unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, drawing, digit) in [("seven", seven(), 7), ("one", one(), 1), ("zero", zero(), 0)] {
        let canvas = drawing.pixels();
        let drawn = drawing::drawn_input(&canvas, &Transform::default(), 32).unwrap();
        let drawn_p = probabilities(&model, &drawn);
        assert_eq!(argmax(&drawn_p), digit, "{name}: {drawn_p:?}");
        // As the user would save it, and as a scan of ink on paper (dark on light).
        let white_on_black = image::GrayImage::from_raw(28, 28, canvas.clone()).unwrap();
        let dark_on_light =
            image::GrayImage::from_fn(28, 28, |x, y| image::Luma([255 - white_on_black.get_pixel(x, y)[0]]));
        for (suffix, image) in [("", white_on_black), ("-ink", dark_on_light)] {
            let path = dir.path().join(format!("{name}{suffix}.png"));
            image.save(&path).unwrap();
            // `convscope classify`'s path: engine::image_input, then the forward pass.
            let classified = engine::image_input(&spec, &path).unwrap();
            let classified_p = probabilities(&model, &classified);
            let largest = drawn_p.iter().zip(&classified_p).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(largest <= 1e-6, "{name}{suffix}: probabilities differ by {largest}");
        }
    }
}

#[test]
fn the_pad_fits_and_centres_a_digit_drawn_anywhere_as_mnist_does() {
    // The same "1" drawn small in a corner and large in the middle reads alike.
    let mut corner = Drawing::default();
    corner.stroke(&[[5.0, 2.0], [5.0, 12.0]], false);
    let corner = drawing::drawn_input(&corner.pixels(), &Transform::default(), 32).unwrap();
    let middle = drawing::drawn_input(&one().pixels(), &Transform::default(), 32).unwrap();
    let model = shipped();
    assert_eq!(argmax(&probabilities(&model, &corner)), 1);
    // Both land with their centre of mass on (14, 14) of the 28×28 digit, (16, 16) padded.
    for input in [&corner, &middle] {
        let ink = (input - f64::from((0.0 - MNIST_MEAN) / MNIST_STD)).clamp_min(0.0).squeeze();
        let mass = ink.sum(Kind::Double).double_value(&[]);
        let cols = Tensor::arange(32, (Kind::Double, Device::Cpu));
        let cx = (ink.to_kind(Kind::Double).sum_dim_intlist(0, false, Kind::Double) * &cols)
            .sum(Kind::Double)
            .double_value(&[])
            / mass;
        let cy = (ink.to_kind(Kind::Double).sum_dim_intlist(1, false, Kind::Double) * &cols)
            .sum(Kind::Double)
            .double_value(&[])
            / mass;
        assert!((cx - 16.0).abs() <= 0.5 && (cy - 16.0).abs() <= 0.5, "centre of mass ({cx}, {cy})");
    }
    // An empty pad is an empty field, not an error.
    let empty = drawing::drawn_input(&Drawing::default().pixels(), &Transform::default(), 32).unwrap();
    assert_eq!(empty.max().double_value(&[]), empty.min().double_value(&[]));
}

#[test]
fn mnist_digits_pass_the_normalisation_unchanged() {
    let digits = train::load_digits(&train::default_mnist_path().expect("run `make test`")).unwrap();
    let changed = digits
        .pixels
        .iter()
        .filter(|p| {
            let image = image::DynamicImage::ImageLuma8(image::GrayImage::from_raw(28, 28, p.to_vec()).unwrap());
            digit_pixels(&image) != p.to_vec()
        })
        .count();
    // One of the 5,000 has a 19-pixel box, which is fitted to 20.
    assert!(changed <= 1, "{changed} digits changed");
}

#[test]
fn the_held_out_mistakes_are_what_the_accuracy_counts() {
    let model = shipped();
    let digits = train::load_digits(&train::default_mnist_path().expect("run `make test`")).unwrap();
    let held_out = drawing::held_out(&digits, TrainConfig::default().seed);
    assert_eq!(held_out, train::split(&digits, 1998).1);
    let mistakes = drawing::mistakes(&model, &digits, &held_out).unwrap();
    let accuracy = train::accuracy(&model, &digits, &held_out).unwrap();
    assert_eq!(mistakes.len(), ((1.0 - accuracy) * held_out.len() as f64).round() as usize);
    let manifest = Manifest::load(&manifest_dir().join("weights")).unwrap();
    let top1 = manifest.weights["lenet5"].measured.as_ref().unwrap().top1;
    assert!(((1000 - mistakes.len()) as f64 / 10.0 - top1).abs() < 0.051, "{} mistakes, top-1 {top1}", mistakes.len());
    assert!(!mistakes.is_empty(), "no network is perfect on these: the list is worth showing");
    for mistake in &mistakes {
        assert!(held_out.contains(&mistake.index));
        assert_eq!(mistake.label, digits.labels[mistake.index]);
        assert_ne!(mistake.predicted, mistake.label);
        // One click puts the digit on the pad: the pad reads it as wrongly.
        let mut pad = Drawing::default();
        pad.set_pixels(&digits.pixels[mistake.index]);
        let p = probabilities(&model, &drawing::drawn_input(&pad.pixels(), &Transform::default(), 32).unwrap());
        assert_eq!(argmax(&p) as i64, mistake.predicted, "digit {}", mistake.index);
        assert!((f64::from(p[argmax(&p)]) - mistake.probability).abs() < 1e-4);
    }
}

thread_local! {
    /// Replies that landed in the same poll after the one a `wait_for` waited for: the next
    /// `wait_for` reads them first (on a slow machine a drawing's reading arrived in the same
    /// poll as the samples waited for, and was lost).
    static LEFT_OVER: std::cell::RefCell<Vec<DigitReply>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The replies up to and including the first one `done` accepts.
fn wait_for(worker: &mut DigitWorker, what: &str, mut done: impl FnMut(&DigitReply) -> bool) -> Vec<DigitReply> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    let mut incoming = LEFT_OVER.with(|left| std::mem::take(&mut *left.borrow_mut()));
    loop {
        let mut batch = incoming.into_iter();
        while let Some(reply) = batch.next() {
            if let DigitReply::Failed(message) = &reply {
                panic!("waiting for {what}: {message}");
            }
            let finished = done(&reply);
            seen.push(reply);
            if finished {
                LEFT_OVER.with(|left| left.borrow_mut().extend(batch));
                return seen;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
        incoming = worker.poll();
    }
}

#[test]
fn the_pad_thread_reads_the_newest_drawing_and_shows_every_layer() {
    let mut worker = DigitWorker::spawn(|| {}).unwrap();
    worker.load(WeightsChoice::File(manifest_dir().join("weights/lenet5.safetensors")));
    wait_for(&mut worker, "the weights", |r| matches!(r, DigitReply::Loaded { .. }));
    // A burst of drawings: one is read at once, only the newest of the rest after it.
    let drawings = [one(), seven(), zero(), one(), seven()];
    for (generation, drawing) in drawings.iter().enumerate() {
        worker.read(DrawnDigit {
            generation: generation as u64,
            canvas: drawing.pixels(),
            transform: Transform::default(),
        });
    }
    let replies =
        wait_for(&mut worker, "the newest drawing's plot", |r| matches!(r, DigitReply::Swept(s) if s.generation == 4));
    let generations: Vec<u64> = replies
        .iter()
        .filter_map(|r| if let DigitReply::Read(read) = r { Some(read.generation) } else { None })
        .collect();
    assert_eq!(generations, vec![0, 4], "the drawings in between were never read");
    let reading =
        replies.iter().rev().find_map(|r| if let DigitReply::Read(read) = r { Some(read) } else { None }).unwrap();
    let Some(DigitReply::Swept(sweep)) = replies.last() else { unreachable!() };
    assert_eq!(argmax(&reading.probabilities), 7);
    let shapes: Vec<_> = reading.maps.iter().map(|m| (m.label, m.shape)).collect();
    assert_eq!(shapes, vec![("C1", [6, 28, 28]), ("S2", [6, 14, 14]), ("C3", [16, 10, 10]), ("S4", [16, 5, 5])]);
    assert!(reading.maps.iter().all(|m| m.values.len() == m.shape.iter().product::<usize>()));
    assert_eq!(sweep.points.len(), SWEEP_SHIFTS.count());
    // The sweep's unshifted entry is the reading itself.
    let (_, at_zero) = sweep.points.iter().find(|(s, _)| *s == 0.0).unwrap();
    for (a, b) in at_zero.iter().zip(&reading.probabilities) {
        assert!((a - b).abs() < 1e-4);
    }
    // Far off to the side, the 7 is gone from the field's middle and the answer changes.
    let (_, far) = sweep.points.first().unwrap();
    assert!(far[7] < reading.probabilities[7]);
    assert_eq!(reading.input.len(), 32 * 32);
    // Moving the digit sideways changes the reading, not the plot: none is made again.
    let moved = Transform { shift: [5.0, 0.0], ..Transform::default() };
    worker.read(DrawnDigit { generation: 5, canvas: drawings[4].pixels(), transform: moved });
    worker.read(DrawnDigit { generation: 6, canvas: drawings[4].pixels(), transform: Transform::default() });
    worker.samples();
    let mut replies = wait_for(&mut worker, "the held-out digits", |r| matches!(r, DigitReply::Samples(_)));
    if !replies.iter().any(|r| matches!(r, DigitReply::Read(read) if read.generation == 6)) {
        replies.extend(wait_for(&mut worker, "the last drawing", |r| matches!(r, DigitReply::Read(_))));
    }
    // A little longer, for a plot that should not come.
    std::thread::sleep(Duration::from_millis(200));
    replies.extend(worker.poll());
    assert!(!replies.iter().any(|r| matches!(r, DigitReply::Swept(_))), "the plot held");
    let read: Vec<u64> = replies
        .iter()
        .filter_map(|r| if let DigitReply::Read(read) = r { Some(read.generation) } else { None })
        .collect();
    assert_eq!(read, vec![5, 6]);
    let samples =
        replies.iter().find_map(|r| if let DigitReply::Samples(samples) = r { Some(samples) } else { None }).unwrap();
    assert_eq!(samples.held_out.len(), 1000);
    assert!(samples.mistakes.iter().all(|m| samples.held_out.iter().any(|s| s.index == m.index && s.label == m.label)));
}

#[test]
fn the_pad_thread_trains_reports_progress_and_can_be_stopped() {
    let mut worker = DigitWorker::spawn(|| {}).unwrap();
    worker.load(WeightsChoice::Random { seed: 3 });
    wait_for(&mut worker, "random weights", |r| matches!(r, DigitReply::Loaded { .. }));
    let config = TrainConfig { epochs: 1, batch: 128, ..TrainConfig::default() };
    worker.train(config.clone());
    // A drawing sent during training is read between batches.
    worker.read(DrawnDigit { generation: 1, canvas: seven().pixels(), transform: Transform::default() });
    let replies = wait_for(&mut worker, "the run to finish", |r| matches!(r, DigitReply::Trained(_)));
    assert!(replies.iter().any(|r| matches!(r, DigitReply::Training(TrainProgress::Batch { .. }))));
    let epoch = replies.iter().find_map(|r| match r {
        DigitReply::Training(TrainProgress::Epoch { held_out_accuracy, .. }) => Some(*held_out_accuracy),
        _ => None,
    });
    let Some(DigitReply::Trained(Some(report))) = replies.last() else {
        panic!("the run finished: {:?}", replies.last())
    };
    assert_eq!(epoch, Some(report.test_accuracy));
    assert!(report.test_accuracy > 0.5, "one epoch learns something: {}", report.test_accuracy);
    assert!(replies.iter().any(|r| matches!(r, DigitReply::Read(read) if read.generation == 1)));
    assert!(!worker.training());

    // A long run stopped after its first batches leaves the trained network in place.
    worker.read(DrawnDigit { generation: 2, canvas: seven().pixels(), transform: Transform::default() });
    let before = wait_for(&mut worker, "a reading", |r| matches!(r, DigitReply::Read(_)));
    let Some(DigitReply::Read(before)) = before.last() else { unreachable!() };
    worker.train(TrainConfig { epochs: 30, ..config });
    wait_for(&mut worker, "a batch", |r| matches!(r, DigitReply::Training(_)));
    worker.cancel_training();
    let replies = wait_for(&mut worker, "the run to stop", |r| matches!(r, DigitReply::Trained(_)));
    assert!(matches!(replies.last(), Some(DigitReply::Trained(None))));
    worker.read(DrawnDigit { generation: 3, canvas: seven().pixels(), transform: Transform::default() });
    let after = wait_for(&mut worker, "a reading", |r| matches!(r, DigitReply::Read(_)));
    let Some(DigitReply::Read(after)) = after.last() else { unreachable!() };
    assert_eq!(after.probabilities, before.probabilities);
}
