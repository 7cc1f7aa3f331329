//! The health check in every binding: [`PasscrowClient::check`],
//! [`PasscrowClient::renewal_due`], [`PasscrowClient::mark_reviewed`] and
//! the records they return. No code is sent by any of them.

use super::*;
use crate::client::{EscrowState, Recoverable, RenewalReason};

/// What one escrow's server says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum EscrowStatus {
    /// Held, live, not frozen (and proven intact when `proven`).
    Held,
    /// The server does not have it.
    Missing,
    /// The server holds other bytes under its id.
    Altered,
    /// Past its expiration.
    Expired,
    /// Frozen: no more recovery attempts allowed.
    Frozen,
    /// The server did not answer.
    Unreachable,
    /// The server has no status method (python-passcrow): reachable only.
    Unknown,
}

/// Whether a pack can be recovered now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Recoverability {
    /// Enough escrows are held.
    Yes,
    /// Not enough, even counting the unknown ones.
    No,
    /// Servers without the status method decide it.
    Unknown,
}

/// One escrow's health.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct EscrowCheck {
    /// Its code prefix (none for a pack's ephemeral copy).
    pub prefix: Option<String>,
    /// Identity kind.
    pub kind: String,
    /// The server.
    pub server: String,
    /// What the server says.
    pub status: EscrowStatus,
    /// When it expires (unix time).
    pub expires: i64,
    /// Proven intact with a challenge never sent before.
    pub proven: bool,
    /// Why, for the states that need one.
    pub detail: Option<String>,
}

/// A pack's health, from [`PasscrowClient::check`].
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PackCheck {
    /// The pack.
    pub name: String,
    /// Escrows needed.
    pub min_shares: u32,
    /// Share escrows held.
    pub healthy: u32,
    /// Held − needed: how many more escrows can be lost.
    pub margin: i64,
    /// Recoverable now.
    pub recoverable: Recoverability,
    /// Every escrow, in pack order.
    pub escrows: Vec<EscrowCheck>,
}

/// Why a pack is due for review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RenewalReasonKind {
    /// An escrow expires within the window.
    Expiring,
    /// An escrow is missing.
    Missing,
    /// An escrow is altered.
    Altered,
    /// An escrow has expired.
    Expired,
    /// An escrow is frozen.
    Frozen,
    /// It cannot be recovered now.
    NotRecoverable,
    /// Losing one more escrow would make it unrecoverable.
    MarginZero,
    /// A year since protect or the last review.
    ReviewDue,
    /// The pack file cannot be read.
    Unreadable,
}

/// One reason, with a line for the user.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RenewalReasonInfo {
    /// Which.
    pub kind: RenewalReasonKind,
    /// A line for the user.
    pub text: String,
}

/// Whether one pack is due for review, from [`PasscrowClient::renewal_due`].
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RenewalAdvice {
    /// The pack.
    pub name: String,
    /// True when any reason applies: ask the user to review (`renew`).
    pub due: bool,
    /// Why.
    pub reasons: Vec<RenewalReasonInfo>,
    /// The check it is based on (none for an unreadable pack).
    pub check: Option<PackCheck>,
}

fn pack_check(h: client::PackHealth) -> PackCheck {
    PackCheck {
        name: h.name,
        min_shares: h.min_shares,
        healthy: sat_u32(h.healthy),
        margin: h.margin,
        recoverable: match h.recoverable {
            Recoverable::Yes => Recoverability::Yes,
            Recoverable::No => Recoverability::No,
            Recoverable::Unknown => Recoverability::Unknown,
        },
        escrows: h
            .escrows
            .into_iter()
            .map(|e| EscrowCheck {
                prefix: e.prefix.map(String::from),
                kind: e.kind,
                server: e.server,
                status: match e.state {
                    EscrowState::Held => EscrowStatus::Held,
                    EscrowState::Missing => EscrowStatus::Missing,
                    EscrowState::Altered => EscrowStatus::Altered,
                    EscrowState::Expired => EscrowStatus::Expired,
                    EscrowState::Frozen => EscrowStatus::Frozen,
                    EscrowState::Unreachable => EscrowStatus::Unreachable,
                    EscrowState::Unknown => EscrowStatus::Unknown,
                },
                expires: e.expires,
                proven: e.proven,
                detail: e.detail,
            })
            .collect(),
    }
}

fn reason(r: &RenewalReason) -> RenewalReasonInfo {
    let kind = match r {
        RenewalReason::Expiring { .. } => RenewalReasonKind::Expiring,
        RenewalReason::Missing { .. } => RenewalReasonKind::Missing,
        RenewalReason::Altered { .. } => RenewalReasonKind::Altered,
        RenewalReason::Expired { .. } => RenewalReasonKind::Expired,
        RenewalReason::Frozen { .. } => RenewalReasonKind::Frozen,
        RenewalReason::NotRecoverable => RenewalReasonKind::NotRecoverable,
        RenewalReason::MarginZero => RenewalReasonKind::MarginZero,
        RenewalReason::ReviewDue { .. } => RenewalReasonKind::ReviewDue,
        RenewalReason::Unreadable { .. } => RenewalReasonKind::Unreadable,
    };
    RenewalReasonInfo {
        kind,
        text: r.describe(),
    }
}

#[uniffi::export]
impl PasscrowClient {
    /// Ask each escrow's server whether it still holds the escrow intact,
    /// sending no code and telling no one, with this call's `options`
    /// (none: no anonymity delay). Blocks.
    #[uniffi::method(default(options = None))]
    pub fn check(&self, pack: Arc<Pack>, options: Option<CallOptions>) -> Res<PackCheck> {
        let call = call_options(self.core(), options)?;
        Ok(pack_check(self.core().check_with(&pack.inner, &call)?))
    }

    /// For every pack: whether to ask the user to review it now, and why
    /// (escrows expiring within `within_seconds`, an escrow missing or
    /// altered, margin zero, a year since protect or the last review).
    /// Checks every pack (network). Blocks.
    #[uniffi::method(default(within_seconds = 2592000, options = None))]
    pub fn renewal_due(
        &self,
        within_seconds: u64,
        options: Option<CallOptions>,
    ) -> Res<Vec<RenewalAdvice>> {
        let call = call_options(self.core(), options)?;
        Ok(self
            .core()
            .renewal_due_with(Duration::from_secs(within_seconds), &call)?
            .into_iter()
            .map(|d| RenewalAdvice {
                reasons: d.reasons.iter().map(reason).collect(),
                name: d.name,
                due: d.due,
                check: d.health.map(pack_check),
            })
            .collect())
    }

    /// Record that the user reviewed the pack `name` now.
    pub fn mark_reviewed(&self, name: String) -> Res<()> {
        Ok(self.core().mark_reviewed(&name)?)
    }
}
