//! Renewal due: for each pack, whether the app should ask the user to
//! review it now, and why. `renew` is the repair.

use std::time::Duration;

use super::check::{EscrowState, PackHealth, Recoverable};
use super::sidecar;
use super::{now, CallOptions, Client};
use crate::pack::RecoveryPack;
use crate::Result;

/// How long after protect or the last review a pack is due again: the
/// seed asks apps to remind users about once a year.
pub const REVIEW_INTERVAL: Duration = Duration::from_secs(365 * 86400);

/// Why a pack is due for review.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenewalReason {
    /// An escrow expires within the window (the earliest, unix time).
    Expiring {
        /// When.
        expires: i64,
    },
    /// Escrows a server no longer has.
    Missing {
        /// How many.
        escrows: usize,
    },
    /// Escrows a server holds altered.
    Altered {
        /// How many.
        escrows: usize,
    },
    /// Escrows past their expiration.
    Expired {
        /// How many.
        escrows: usize,
    },
    /// Escrows frozen by their server.
    Frozen {
        /// How many.
        escrows: usize,
    },
    /// The escrows that answered cannot recover it now.
    NotRecoverable,
    /// Recoverable, but losing one more escrow would make it not.
    MarginZero,
    /// A year since protect or the last review (that time).
    ReviewDue {
        /// Protect or last review, unix time.
        since: i64,
    },
    /// The pack file cannot be read.
    Unreadable {
        /// Why.
        error: String,
    },
}

impl RenewalReason {
    /// A line for the user.
    pub fn describe(&self) -> String {
        match self {
            RenewalReason::Expiring { expires } => {
                format!("an escrow expires soon (unix time {expires})")
            }
            RenewalReason::Missing { escrows } => format!("{escrows} escrow(s) missing"),
            RenewalReason::Altered { escrows } => format!("{escrows} escrow(s) altered"),
            RenewalReason::Expired { escrows } => format!("{escrows} escrow(s) expired"),
            RenewalReason::Frozen { escrows } => format!("{escrows} escrow(s) frozen"),
            RenewalReason::NotRecoverable => "it cannot be recovered now".into(),
            RenewalReason::MarginZero => {
                "losing one more escrow would make it unrecoverable".into()
            }
            RenewalReason::ReviewDue { since } => {
                format!("a year since it was protected or reviewed (unix time {since})")
            }
            RenewalReason::Unreadable { error } => format!("the pack cannot be read: {error}"),
        }
    }
}

/// Whether one pack is due for review.
#[derive(Clone, Debug)]
pub struct RenewalDue {
    /// The pack.
    pub name: String,
    /// True when any reason applies.
    pub due: bool,
    /// Why (empty when not due).
    pub reasons: Vec<RenewalReason>,
    /// The check it is based on (none for an unreadable pack).
    pub health: Option<PackHealth>,
}

/// The reasons a checked pack is due, at `now`, with escrows expiring
/// within `within` counted; `last_review` is protect or the last review.
pub fn renewal_reasons(
    pack: &RecoveryPack,
    health: &PackHealth,
    last_review: i64,
    within: Duration,
    now: i64,
) -> Vec<RenewalReason> {
    let mut out = vec![];
    let limit = crate::util::clock::unix_after(now, within);
    let soonest = health
        .escrows
        .iter()
        .filter(|e| !matches!(e.state, EscrowState::Missing | EscrowState::Expired))
        .map(|e| e.expires)
        .chain(std::iter::once(pack.expires_ts()))
        .filter(|t| *t > 0)
        .min();
    if let Some(t) = soonest.filter(|t| *t <= limit) {
        out.push(RenewalReason::Expiring { expires: t });
    }
    let count = |s: EscrowState| health.escrows.iter().filter(|e| e.state == s).count();
    for (state, make) in [
        (
            EscrowState::Missing,
            (|escrows| RenewalReason::Missing { escrows }) as fn(usize) -> RenewalReason,
        ),
        (EscrowState::Altered, |escrows| RenewalReason::Altered {
            escrows,
        }),
        (EscrowState::Expired, |escrows| RenewalReason::Expired {
            escrows,
        }),
        (EscrowState::Frozen, |escrows| RenewalReason::Frozen {
            escrows,
        }),
    ] {
        let n = count(state);
        if n > 0 {
            out.push(make(n));
        }
    }
    match health.recoverable {
        Recoverable::No => out.push(RenewalReason::NotRecoverable),
        Recoverable::Yes if health.margin == 0 => out.push(RenewalReason::MarginZero),
        _ => {}
    }
    let interval = REVIEW_INTERVAL.as_secs() as i64;
    if last_review > 0 && now.saturating_sub(last_review) >= interval {
        out.push(RenewalReason::ReviewDue { since: last_review });
    }
    out
}

impl Client {
    /// For every pack: check it ([`Client::check`]) and say whether the
    /// app should ask the user to review it now, and why: escrows
    /// expiring within `within`, an escrow missing, altered, expired or
    /// frozen, the pack not recoverable or with a margin of zero, or a
    /// year since protect or the last review. `renew` is the repair.
    pub fn renewal_due(&self, within: Duration) -> Result<Vec<RenewalDue>> {
        self.renewal_due_with(within, &CallOptions::default())
    }

    /// [`Client::renewal_due`] with this call's own options.
    pub fn renewal_due_with(
        &self,
        within: Duration,
        call: &CallOptions,
    ) -> Result<Vec<RenewalDue>> {
        let mut out = vec![];
        for (name, pack) in self.packs.list()? {
            let pack = match pack {
                Ok(p) => p,
                Err(e) => {
                    out.push(RenewalDue {
                        name,
                        due: true,
                        reasons: vec![RenewalReason::Unreadable {
                            error: e.to_string(),
                        }],
                        health: None,
                    });
                    continue;
                }
            };
            out.push(self.renewal_due_for(&name, &pack, within, call)?);
        }
        Ok(out)
    }

    /// Whether the pack `name` (loaded as `pack`) is due for review.
    pub fn renewal_due_for(
        &self,
        name: &str,
        pack: &RecoveryPack,
        within: Duration,
        call: &CallOptions,
    ) -> Result<RenewalDue> {
        let health = self.check_with(pack, call)?;
        let last = sidecar::load(&self.packs, name)
            .ok()
            .flatten()
            .map(|s| s.last_review())
            .or(pack.created_ts)
            .unwrap_or(0);
        let reasons = renewal_reasons(pack, &health, last, within, now());
        Ok(RenewalDue {
            name: name.to_string(),
            due: !reasons.is_empty(),
            reasons,
            health: Some(health),
        })
    }

    /// After a recovery with the pack `name`: its side file, if it has
    /// one, records the review (failures are only logged).
    pub(crate) fn note_review(&self, name: &str) {
        if let Ok(Some(mut side)) = sidecar::load(&self.packs, name) {
            side.reviewed_ts = Some(now());
            if let Err(e) = sidecar::save(&self.packs, name, &side) {
                self.log(&format!("could not record the review: {e}"));
            }
        }
    }

    /// Record that the user reviewed the pack `name` now (the year until
    /// the next review starts again). A successful recovery records it
    /// too. Packs made elsewhere (no side file) get one.
    pub fn mark_reviewed(&self, name: &str) -> Result<()> {
        let pack = self.packs.load(name)?;
        let mut side = match sidecar::load(&self.packs, name)? {
            Some(s) => s,
            None => sidecar::SideFile::new(pack.created_ts.unwrap_or(0), vec![]),
        };
        side.reviewed_ts = Some(now());
        sidecar::save(&self.packs, name, &side)
    }
}
