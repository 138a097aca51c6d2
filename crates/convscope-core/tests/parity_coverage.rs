//! No architecture arrives untested: every id the zoo returns has a parity test here and a
//! reference case in tests/fixtures/make_fixtures.py.

mod common;

use std::collections::BTreeSet;

/// The parity tests' sources: each case is one `check_arch("ID")` call.
const PARITY_SOURCES: [&str; 5] = [
    include_str!("parity.rs"),
    include_str!("parity_classic.rs"),
    include_str!("parity_dense_mobile.rs"),
    include_str!("parity_efficientnet.rs"),
    include_str!("parity_inception.rs"),
];

fn checked_ids() -> BTreeSet<String> {
    const CALL: &str = "check_arch(\"";
    let mut ids = BTreeSet::new();
    for source in PARITY_SOURCES {
        for (at, _) in source.match_indices(CALL) {
            let rest = &source[at + CALL.len()..];
            ids.insert(rest[..rest.find('"').expect("a closed string")].to_owned());
        }
    }
    ids
}

fn reference_cases() -> BTreeSet<String> {
    let driver = common::manifest_dir().join("tests/fixtures/make_fixtures.py");
    let output = std::process::Command::new(common::manifest_dir().join(".venv/bin/python"))
        .arg(&driver)
        .arg("--list")
        .output()
        .expect("the venv's Python runs (make test sets it up)");
    assert!(output.status.success(), "{} --list: {}", driver.display(), String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn every_zoo_id_has_a_parity_test_and_a_reference_case() {
    let zoo: BTreeSet<String> = convscope_core::zoo::all().iter().map(|spec| spec.id.to_owned()).collect();
    let checked = checked_ids();
    let cases = reference_cases();
    let untested: Vec<&String> = zoo.difference(&checked).collect();
    assert!(untested.is_empty(), "zoo ids without a parity test (add a check_arch call): {untested:?}");
    let unreferenced: Vec<&String> = zoo.difference(&cases).collect();
    assert!(unreferenced.is_empty(), "zoo ids without a reference case in make_fixtures.py: {unreferenced:?}");
    // And nothing tested that the zoo no longer has.
    let stale: Vec<&String> = checked.union(&cases).filter(|id| !zoo.contains(*id)).collect();
    assert!(stale.is_empty(), "parity cases for ids the zoo does not have: {stale:?}");
}
