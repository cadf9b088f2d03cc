//! Snapshot tests of `why`'s human output on the recorded catalogue: one expected file per
//! case under `tests/data/why/`. `PORTREAP_BLESS=1 cargo test --test it why_recorded::` rewrites
//! them after an intended change (review the diff).

use crate::common::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/snapshot-catalogue.json"
);

fn check(case: &str, args: &[&str]) {
    let mut all = vec!["why", "--snapshot", FIXTURE];
    all.extend_from_slice(args);
    let out = portreap().args(&all).output().unwrap();
    assert_success(&out);
    let actual = String::from_utf8(out.stdout).unwrap();
    let path = format!("{}/tests/data/why/{case}.txt", env!("CARGO_MANIFEST_DIR"));
    if std::env::var("PORTREAP_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{path} missing: run with PORTREAP_BLESS=1 to create it"));
    assert_eq!(actual, expected, "why {args:?} differs from {path}");
    // Readable at 100 columns, commands aside (they are meant to be copied whole).
    for line in actual
        .lines()
        .filter(|l| !l.trim_start().starts_with("next:") && !l.trim_start().starts_with("or:"))
    {
        assert!(line.chars().count() <= 100, "too wide: {line}");
    }
}

#[test]
fn orphaned_proxy() {
    check("orphaned-proxy", &["3105"]);
}

#[test]
fn paused_container() {
    check("paused", &["3201"]);
}

#[test]
fn healthy_holder_and_the_container_it_blocks() {
    check("blocked", &["3205"]);
}

#[test]
fn free_port_wanted_by_a_dormant_container_and_one_by_nobody() {
    check("dormant-and-free", &["3204", "9999"]);
}

#[test]
fn orphaned_compose_project() {
    check("orphaned-compose", &["3301", "3302"]);
}

#[test]
fn reservation_without_socket() {
    check("reservation", &["3207"]);
}

#[test]
fn host_network_container() {
    check("host-network", &["3208"]);
}

#[test]
fn a_container_explains_its_ports() {
    check("container-blocked", &["--container", "s-blocked"]);
}
