//! Sending a zone's change groups to Route53 in batches within its limits.

use std::collections::{HashMap, HashSet};

use super::CloudFailure;
use crate::dns::batch::{BatchLimits, pack};
use crate::dns::plan::{Change, ChangeGroup};
use crate::dns::route53::{Route53, Route53Error};

/// Where change batches go: [`Route53`], or a scripted stand-in in unit tests of the batching
/// logic.
pub(super) trait ChangeSink {
    /// Applies one batch atomically to `zone`.
    fn change(
        &self,
        zone: &str,
        changes: &[Change],
        comment: &str,
    ) -> impl Future<Output = Result<(), Route53Error>> + Send;
}

impl ChangeSink for Route53 {
    fn change(
        &self,
        zone: &str,
        changes: &[Change],
        comment: &str,
    ) -> impl Future<Output = Result<(), Route53Error>> + Send {
        Route53::change(self, zone, changes, comment)
    }
}

/// What an apply left undone.
#[derive(Debug, Default)]
pub(super) struct ApplyReport {
    /// Resource → why its groups did not land.
    pub(super) failures: HashMap<String, CloudFailure>,
    /// Resources whose changes may or may not have landed.
    pub(super) uncertain: HashSet<String>,
}

/// Applies groups in limit-sized batches, one call at a time. A batch refused for its content
/// is halved until the offending group is alone, so one bad change only fails its own cloud.
pub(super) async fn apply(
    sink: &impl ChangeSink,
    zone: &str,
    groups: Vec<ChangeGroup>,
    limits: &BatchLimits,
) -> ApplyReport {
    let mut report = ApplyReport::default();
    let (batches, oversized) = pack(groups, limits);
    for o in oversized {
        report
            .failures
            .entry(o.resource.clone())
            .or_insert_with(|| o.into());
    }
    // Work stack of chunks; the front of the zone's order is processed first.
    let mut stack: Vec<Vec<ChangeGroup>> = batches.into_iter().rev().collect();
    while let Some(mut chunk) = stack.pop() {
        let changes: Vec<_> = chunk
            .iter()
            .flat_map(|g| g.changes.iter().cloned())
            .collect();
        let comment = format!("insync-operator: {} change(s)", changes.len());
        match sink.change(zone, &changes, &comment).await {
            Ok(()) => {}
            Err(Route53Error::Rejected {
                after_lost_response: true,
                ..
            }) => {
                // Probably our own earlier attempt; the next plan will tell.
                report
                    .uncertain
                    .extend(chunk.into_iter().map(|g| g.resource));
            }
            Err(e @ Route53Error::Rejected { .. }) => {
                if chunk.len() > 1 {
                    let right = chunk.split_off(chunk.len() / 2);
                    stack.push(right);
                    stack.push(chunk);
                } else {
                    for g in chunk {
                        tracing::warn!(zone, resource = g.resource, name = g.name, error = %e, "DNS change rejected");
                        report
                            .failures
                            .entry(g.resource)
                            .or_insert_with(|| e.clone().into());
                    }
                }
            }
            Err(e) => {
                // Throttled past the retry budget, or a failure that affects every call:
                // stop here and let the zone be retried later.
                for g in chunk.into_iter().chain(stack.drain(..).flatten()) {
                    report
                        .failures
                        .entry(g.resource)
                        .or_insert_with(|| e.clone().into());
                }
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::dns::plan::{ChangeAction, RecordSet};
    use crate::dns::route53::SdkCause;

    /// Answers each batch by the first rule whose name is in it; records what was sent.
    #[derive(Default)]
    struct Scripted {
        /// (record name, error) — a batch holding that name gets that error.
        rules: Vec<(String, Route53Error)>,
        sent: Mutex<Vec<Vec<String>>>,
    }

    impl ChangeSink for Scripted {
        fn change(
            &self,
            _zone: &str,
            changes: &[Change],
            _comment: &str,
        ) -> impl Future<Output = Result<(), Route53Error>> + Send {
            let names: Vec<String> = changes.iter().map(|c| c.record.name.clone()).collect();
            let answer = self
                .rules
                .iter()
                .find(|(name, _)| names.contains(name))
                .map_or(Ok(()), |(_, e)| Err(e.clone()));
            self.sent.lock().unwrap().push(names);
            std::future::ready(answer)
        }
    }

    fn group(resource: &str, name: &str) -> ChangeGroup {
        ChangeGroup {
            resource: resource.into(),
            name: name.into(),
            changes: vec![Change {
                action: ChangeAction::Create,
                record: RecordSet {
                    name: name.into(),
                    rtype: "A".into(),
                    set_identifier: None,
                    ttl: Some(60),
                    values: vec!["192.0.2.1".into()],
                    alias: None,
                },
            }],
        }
    }

    fn rejected(after_lost_response: bool) -> Route53Error {
        Route53Error::Rejected {
            zone: "Z1".into(),
            code: "InvalidChangeBatch".into(),
            message: "bad".into(),
            after_lost_response,
            source: SdkCause::new(std::io::Error::other("bad")),
        }
    }

    fn gave_up() -> Route53Error {
        Route53Error::GaveUp {
            operation: "ChangeResourceRecordSets",
            attempts: 5,
            code: "Throttling".into(),
            message: "slow down".into(),
            source: SdkCause::new(std::io::Error::other("slow down")),
        }
    }

    fn four_groups() -> Vec<ChangeGroup> {
        ["a", "b", "c", "d"]
            .iter()
            .map(|c| group(&format!("insynccloud/ns/{c}"), &format!("{c}.example.com")))
            .collect()
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn everything_in_one_call_when_it_fits() {
        let sink = Scripted::default();
        let report = block_on(apply(&sink, "Z1", four_groups(), &BatchLimits::default()));
        assert!(report.failures.is_empty() && report.uncertain.is_empty());
        assert_eq!(sink.sent.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_rejected_batch_is_halved_until_only_the_bad_cloud_fails() {
        let sink = Scripted {
            rules: vec![("c.example.com".into(), rejected(false))],
            ..Default::default()
        };
        let report = block_on(apply(&sink, "Z1", four_groups(), &BatchLimits::default()));
        let failed: Vec<&String> = report.failures.keys().collect();
        assert_eq!(failed, ["insynccloud/ns/c"]);
        assert_eq!(report.failures["insynccloud/ns/c"], rejected(false).into());
        // abcd rejected → ab ok, cd rejected → c rejected, d ok.
        let sent = sink.sent.lock().unwrap();
        assert_eq!(sent.len(), 5, "{sent:?}");
        assert_eq!(sent[4], ["d.example.com"]);
    }

    #[test]
    fn a_rejection_after_a_lost_response_is_uncertain_not_failed() {
        let sink = Scripted {
            rules: vec![("a.example.com".into(), rejected(true))],
            ..Default::default()
        };
        let report = block_on(apply(&sink, "Z1", four_groups(), &BatchLimits::default()));
        assert!(report.failures.is_empty());
        assert_eq!(report.uncertain.len(), 4, "the whole batch may have landed");
    }

    #[test]
    fn giving_up_fails_the_batch_and_everything_not_yet_sent() {
        let sink = Scripted {
            rules: vec![("a.example.com".into(), gave_up())],
            ..Default::default()
        };
        let limits = BatchLimits {
            max_changes: 2,
            ..BatchLimits::default()
        };
        let report = block_on(apply(&sink, "Z1", four_groups(), &limits));
        assert_eq!(report.failures.len(), 4);
        assert_eq!(
            sink.sent.lock().unwrap().len(),
            1,
            "no call after giving up"
        );
    }

    #[test]
    fn an_oversized_group_fails_alone_with_its_cause() {
        let sink = Scripted::default();
        let limits = BatchLimits {
            max_values: 0,
            ..BatchLimits::default()
        };
        let report = block_on(apply(
            &sink,
            "Z1",
            vec![group("insynccloud/ns/a", "a.example.com")],
            &limits,
        ));
        let failure = &report.failures["insynccloud/ns/a"];
        assert!(matches!(failure, CloudFailure::Oversized(_)), "{failure:?}");
        assert!(sink.sent.lock().unwrap().is_empty());
    }
}
