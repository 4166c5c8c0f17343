//! One zone round: list the zone's records, plan, apply, and say how each cloud in it fared.

use std::collections::HashMap;

use super::CloudFailure;
use super::apply::{ApplyReport, apply};
use crate::dns::batch::BatchLimits;
use crate::dns::plan::{DesiredCloud, PlanOutcome, ZonePlan, plan_zone};
use crate::dns::registry::TxtRegistry;
use crate::dns::route53::{Route53, Route53Error};

/// A cloud taking part in a round, as it was when the round started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Member {
    /// `insynccloud/<ns>/<name>`.
    pub(super) resource: String,
    /// The cloud's request generation; a result for an older one is stale.
    pub(super) generation: u64,
    /// Whether the round removes the cloud's records from this zone (else it publishes them).
    pub(super) removal: bool,
}

/// Outcome of one cloud in one zone round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CloudResult {
    Ready,
    /// A change may or may not have landed (its response was lost); re-plan to find out.
    Uncertain,
    /// Dry run: this many changes were planned and not applied.
    DryRun(usize),
    Conflict {
        name: String,
        detail: String,
    },
    Failed(CloudFailure),
}

/// What a finished round hands back to the worker.
pub(super) struct ZoneRound {
    pub(super) zone: String,
    /// One result per member, or the error that failed the round as a whole.
    pub(super) result: Result<Vec<(Member, CloudResult)>, Route53Error>,
    pub(super) members: Vec<Member>,
}

/// Everything a round needs, moved into its task.
pub(super) struct RoundJob {
    pub(super) route53: Route53,
    pub(super) registry: TxtRegistry,
    pub(super) limits: BatchLimits,
    pub(super) dry_run: bool,
    pub(super) zone: String,
    /// The zone's DNS name when the zone list is known (lets the plan refuse names outside it).
    pub(super) zone_name: Option<String>,
    pub(super) desired: Vec<DesiredCloud>,
    pub(super) removed: Vec<String>,
    pub(super) members: Vec<Member>,
}

impl RoundJob {
    pub(super) async fn run(self) -> ZoneRound {
        let records = match self.route53.list_records(&self.zone).await {
            Ok(r) => r,
            Err(e) => {
                return ZoneRound {
                    zone: self.zone,
                    result: Err(e),
                    members: self.members,
                };
            }
        };
        let plan = plan_zone(
            self.zone_name.as_deref(),
            &records,
            &self.desired,
            &self.removed,
            &self.registry,
        );
        let report = if plan.groups.is_empty() {
            ApplyReport::default()
        } else if self.dry_run {
            log_dry_run(&self.zone, &plan);
            ApplyReport::default()
        } else {
            tracing::info!(
                zone = self.zone,
                groups = plan.groups.len(),
                changes = plan.change_count(),
                "applying DNS changes"
            );
            apply(&self.route53, &self.zone, plan.groups.clone(), &self.limits).await
        };
        let results = cloud_results(&self.members, &plan, &report, self.dry_run);
        ZoneRound {
            zone: self.zone,
            result: Ok(results),
            members: self.members,
        }
    }
}

/// How each member fared: a failed or uncertain apply first, then what the plan said.
fn cloud_results(
    members: &[Member],
    plan: &ZonePlan,
    report: &ApplyReport,
    dry_run: bool,
) -> Vec<(Member, CloudResult)> {
    let mut changes_per: HashMap<&str, usize> = HashMap::new();
    for g in &plan.groups {
        *changes_per.entry(g.resource.as_str()).or_default() += g.changes.len();
    }
    members
        .iter()
        .map(|member| {
            let resource = member.resource.as_str();
            let planned = changes_per.get(resource).copied().unwrap_or(0);
            let result = if let Some(failure) = report.failures.get(resource) {
                CloudResult::Failed(failure.clone())
            } else if report.uncertain.contains(resource) {
                CloudResult::Uncertain
            } else {
                match plan.outcomes.get(resource) {
                    Some(PlanOutcome::Conflict { name, detail }) => CloudResult::Conflict {
                        name: name.clone(),
                        detail: detail.clone(),
                    },
                    Some(PlanOutcome::Invalid(why)) => {
                        CloudResult::Failed(CloudFailure::Unpublishable(Box::new(why.clone())))
                    }
                    _ if dry_run && planned > 0 => CloudResult::DryRun(planned),
                    _ => CloudResult::Ready,
                }
            };
            (member.clone(), result)
        })
        .collect()
}

fn log_dry_run(zone: &str, plan: &ZonePlan) {
    for g in &plan.groups {
        for c in &g.changes {
            tracing::info!(
                zone,
                resource = g.resource,
                action = ?c.action,
                name = c.record.name,
                rtype = c.record.rtype,
                values = ?c.record.values,
                "dry run: would change DNS record"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::plan::{Change, ChangeAction, ChangeGroup, RecordSet, Unpublishable};

    const A: &str = "insynccloud/ns/a";

    fn member(removal: bool) -> Member {
        Member {
            resource: A.into(),
            generation: 3,
            removal,
        }
    }

    fn plan(outcome: PlanOutcome, changes: usize) -> ZonePlan {
        let change = Change {
            action: ChangeAction::Create,
            record: RecordSet {
                name: "a.example.com".into(),
                rtype: "A".into(),
                set_identifier: None,
                ttl: Some(60),
                values: vec!["192.0.2.1".into()],
                alias: None,
            },
        };
        ZonePlan {
            groups: (changes > 0)
                .then(|| ChangeGroup {
                    resource: A.into(),
                    name: "a.example.com".into(),
                    changes: vec![change; changes],
                })
                .into_iter()
                .collect(),
            outcomes: [(A.to_owned(), outcome)].into(),
        }
    }

    fn failed(failure: CloudFailure) -> ApplyReport {
        ApplyReport {
            failures: [(A.to_owned(), failure)].into(),
            ..Default::default()
        }
    }

    fn uncertain() -> ApplyReport {
        ApplyReport {
            uncertain: [A.to_owned()].into(),
            ..Default::default()
        }
    }

    #[test]
    fn each_cloud_result_follows_from_the_apply_report_then_the_plan() {
        let conflict = PlanOutcome::Conflict {
            name: "a.example.com".into(),
            detail: "someone else's".into(),
        };
        let outside = Unpublishable::OutsideZone {
            name: "a.example.org".into(),
            zone: "example.com".into(),
        };
        let invalid = PlanOutcome::Invalid(outside.clone());
        let cases: Vec<(&str, ZonePlan, ApplyReport, bool, CloudResult)> = vec![
            (
                "in sync",
                plan(PlanOutcome::InSync, 0),
                ApplyReport::default(),
                false,
                CloudResult::Ready,
            ),
            (
                "applied",
                plan(PlanOutcome::Changes, 2),
                ApplyReport::default(),
                false,
                CloudResult::Ready,
            ),
            (
                "apply failed",
                plan(PlanOutcome::Changes, 2),
                failed(CloudFailure::PublishedAgain),
                false,
                CloudResult::Failed(CloudFailure::PublishedAgain),
            ),
            (
                "lost response",
                plan(PlanOutcome::Changes, 2),
                uncertain(),
                false,
                CloudResult::Uncertain,
            ),
            (
                "conflict",
                plan(conflict.clone(), 0),
                ApplyReport::default(),
                false,
                CloudResult::Conflict {
                    name: "a.example.com".into(),
                    detail: "someone else's".into(),
                },
            ),
            (
                "invalid",
                plan(invalid, 0),
                ApplyReport::default(),
                false,
                CloudResult::Failed(CloudFailure::Unpublishable(Box::new(outside))),
            ),
            (
                "dry run with changes",
                plan(PlanOutcome::Changes, 2),
                ApplyReport::default(),
                true,
                CloudResult::DryRun(2),
            ),
            (
                "dry run in sync",
                plan(PlanOutcome::InSync, 0),
                ApplyReport::default(),
                true,
                CloudResult::Ready,
            ),
            (
                "dry run conflict",
                plan(conflict, 0),
                ApplyReport::default(),
                true,
                CloudResult::Conflict {
                    name: "a.example.com".into(),
                    detail: "someone else's".into(),
                },
            ),
        ];
        for (case, plan, report, dry_run, want) in cases {
            for removal in [false, true] {
                let got = cloud_results(&[member(removal)], &plan, &report, dry_run);
                assert_eq!(got, vec![(member(removal), want.clone())], "{case}");
            }
        }
    }
}
