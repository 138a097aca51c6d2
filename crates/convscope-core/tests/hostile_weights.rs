//! Weights files that are broken or hostile: each gets its reason, quickly, and the model
//! that was loaded stays as it was.

mod common;

use common::*;
use convscope_core::executor::Model;
use convscope_core::weights::load_into;
use convscope_core::zoo;
use tch::{Device, Tensor};

fn lenet() -> Model {
    Model::random(zoo::find("lenet5").unwrap().graph(), Device::Cpu, 1).unwrap()
}

fn good_tensors(model: &Model) -> Vec<(String, Tensor)> {
    model.graph().params.iter().zip(model.params()).map(|(p, t)| (p.key.clone(), t.detach())).collect()
}

fn refusal(model: &mut Model, path: &std::path::Path) -> String {
    let before = model.params()[0].copy();
    let start = std::time::Instant::now();
    let err = load_into(model, path).unwrap_err().to_string();
    assert!(start.elapsed().as_secs() < 5, "{}: refusing took {:?}", path.display(), start.elapsed());
    assert!(model.params()[0].equal(&before), "{}: the model changed", path.display());
    err
}

#[test]
fn a_header_that_lies_about_offsets_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = lenet();
    let path = dir.path().join("lying.safetensors");
    Tensor::write_safetensors(&good_tensors(&model), &path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + header_len].to_vec()).unwrap();
    // Move one tensor's end far past the data, keeping the header's length.
    let lied = header.replacen(r#""data_offsets":[0,"#, r#""data_offsets":[9,"#, 1);
    assert_ne!(lied, header);
    bytes[8..8 + header_len].copy_from_slice(lied.as_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = refusal(&mut model, &path);
    assert!(err.contains("not a valid safetensors file"), "{err}");

    let short = dir.path().join("short.safetensors");
    std::fs::write(&short, &bytes[..bytes.len() - 100]).unwrap();
    let err = refusal(&mut model, &short);
    assert!(err.contains("truncated, or the header lies") || err.contains("claims"), "{err}");
}

#[test]
fn a_two_gigabyte_sparse_file_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.safetensors");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(2 << 30).unwrap();
    let mut model = lenet();
    let err = refusal(&mut model, &path);
    assert!(err.contains("header claims 0 bytes"), "{err}");
}

#[test]
fn empty_and_directory_paths_say_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    let mut model = lenet();
    assert!(refusal(&mut model, &empty).contains("empty"));
    assert!(refusal(&mut model, dir.path()).contains("directory"));
    let text = dir.path().join("notes.safetensors");
    std::fs::write(&text, b"these are not weights at all, just a note").unwrap();
    assert!(refusal(&mut model, &text).contains("not a valid safetensors file"));
}

#[test]
fn another_architectures_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let resnet = Model::random(zoo::find("resnet20").unwrap().graph(), Device::Cpu, 1).unwrap();
    let path = dir.path().join("r20.safetensors");
    Tensor::write_safetensors(&good_tensors(&resnet), &path).unwrap();
    let mut model = lenet();
    let err = refusal(&mut model, &path);
    // plain20 has the same tensors as resnet20 (its shortcuts have no parameters).
    assert!(err.contains("looks like a resnet20 file") || err.contains("looks like a plain20 file"), "{err}");
    assert!(err.contains("missing") && err.contains("unexpected"), "{err}");
}

#[test]
fn the_fuzzers_seeds_and_findings_are_refused_with_a_reason() {
    // Hand-made lies (zero-sized dimensions of 2^63, fp8, duplicate keys, overlapping
    // offsets, deep JSON…) and whatever fuzzing turned up.
    let mut model = lenet();
    let mut checked = 0;
    for dir in ["fuzz/seeds/weights", "fuzz/regressions/weights_file"] {
        // A folder that went missing would otherwise pass by checking nothing.
        let entries = std::fs::read_dir(manifest_dir().join(dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
        for path in entries.map(|e| e.unwrap().path()) {
            let err = refusal(&mut model, &path);
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(err.contains(&name) && err.lines().count() == 1, "{name}: {err}");
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} files found");
}

/// NaN and infinities are named; huge but finite values whose float sum overflows are not.
#[test]
fn non_finite_values_are_named_and_huge_finite_ones_are_not() {
    let huge = Tensor::full([1000], 1e37, (tch::Kind::Float, Device::Cpu));
    assert!(huge.sum(tch::Kind::Float).double_value(&[]).is_infinite(), "the sum must overflow to test the fallback");
    let with_nan = Tensor::from_slice(&[1.0f32, f32::NAN, 2.0]);
    let with_inf = Tensor::from_slice(&[1.0f32, f32::NEG_INFINITY]);
    let tensors = vec![
        ("huge".to_owned(), huge),
        ("nan".to_owned(), with_nan),
        ("inf".to_owned(), with_inf),
        ("fine".to_owned(), Tensor::from_slice(&[0.5f32, -3.0])),
        ("counts".to_owned(), Tensor::from_slice(&[1i64, 2])),
    ];
    assert_eq!(convscope_core::weights::non_finite(&tensors), ["nan", "inf"]);
}
