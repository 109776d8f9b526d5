//! Mutation sanity: with one safety rule switched off, the simulator must find a violation.
//! This proves the checks can fail.

use crate::raft::sim::{self, Property, SimConfig};

/// Runs seeds until one fails; returns the first failure's property and seed.
fn first_violation(
    mut config: impl FnMut(u64) -> SimConfig,
    seeds: u64,
) -> Option<(Property, u64)> {
    (0..seeds).find_map(|seed| {
        sim::run(&config(seed))
            .err()
            .map(|f| (f.violation.property, seed))
    })
}

#[test]
fn mutation_skip_vote_persistence_is_caught() {
    let found = first_violation(
        |seed| {
            let mut c = SimConfig::new(seed, 3, 300);
            c.unsafe_skip_vote_persistence = true;
            c.pre_vote = false;
            c.crash_rate = 0.1;
            c.restart_rate = 0.5;
            c
        },
        3000,
    );
    eprintln!("skip vote persistence: {found:?}");
    let (property, _) = found.expect("the simulator missed a double vote");
    assert!(matches!(
        property,
        Property::ElectionSafety
            | Property::LogMatching
            | Property::StateMachineSafety
            | Property::LeaderCompleteness
    ));
}

#[test]
fn mutation_disable_figure8_rule_is_caught() {
    // One entry per append lets an older-term entry reach a majority without the new
    // leader's own entry: the state in which counting replicas commits unsafely.
    let found = first_violation(
        |seed| {
            let mut c = SimConfig::new(seed, 3, 600);
            c.unsafe_disable_figure8_rule = true;
            c.pre_vote = false;
            c.check_quorum = false;
            c.crash_rate = 0.1;
            c.partition_rate = 0.2;
            c.faults.loss = 0.1;
            c.max_entries_per_message = 1;
            c
        },
        3000,
    );
    eprintln!("figure 8 rule off: {found:?}");
    let (property, _) = found.expect("the simulator missed a commit of an older term's entry");
    assert!(matches!(
        property,
        Property::LeaderCompleteness | Property::StateMachineSafety
    ));
}
