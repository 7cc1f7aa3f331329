//! Delivery budgets on PostgreSQL: counting a message against its budgets
//! without making every message of a kind wait for one row.
//!
//! Every message counts against its recipient's budgets (rows of that
//! recipient alone) and against the server-wide budget of its kind
//! (`kind:email`: one row, [`BudgetLimit::shared`]). Counted in one
//! transaction, that row stayed locked until the commit had been flushed,
//! so the verifications of every instance took turns on it, one flush each:
//! in `scripts/bench-server.sh` at 16 connections, 4 of 5 busy sessions were
//! waiting for its lock and verify's p99 was 153 ms against escrow's 18 ms.
//! So a charge with shared budgets is two transactions:
//!
//! 1. the shared budgets alone (after the suppression list), decided under
//!    their rows' locks (exact, as before) and committed with
//!    `synchronous_commit = off` ([`Mode::Prelude`]): the locks are released
//!    at once, not after the flush;
//! 2. the suppression list, the recipient's budgets and what the caller
//!    counts with them (the escrow's verification), committed durably. The
//!    WAL is flushed in order, so this commit's flush makes the first one
//!    durable too: both are on disk before the message may go out.
//!
//! The second refusing (an opt-out since the first, the recipient's budget,
//! the escrow's window) gives the first count back, in another short
//! transaction; meanwhile the count may refuse another message near the
//! limit. The first refusing (the server-wide budget is spent) decides the
//! whole charge again as one durable transaction, the way it was, so that a
//! refusal names the budget it always named (the recipient's before the
//! server's) and the answers are SQLite's. A crash between the two
//! transactions, or a give-back that fails, leaves the server-wide budget
//! counting a message that was never sent: it errs towards refusing, by one
//! message per charge in flight.

use super::super::{BudgetLimit, Charge, Charged, Counted, StorageResult};
use super::{bytes, count32, int, text, Mode, PostgresStorage, Tx};

/// Which of a charge's budgets one transaction counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// All of them, and the suppression list.
    All,
    /// The shared ones only (and the suppression list).
    Shared,
    /// The recipient's own ones, and the suppression list.
    Own,
}

impl Part {
    fn takes(self, l: &BudgetLimit) -> bool {
        match self {
            Part::All => true,
            Part::Shared => l.shared,
            Part::Own => !l.shared,
        }
    }
}

/// What a charge, and what was counted with it, came to.
pub(super) enum Outcome<T, D> {
    /// The message was refused; nothing was counted.
    Refused(Charged),
    /// What was counted with it said no (returned `Err(D)`); nothing was
    /// counted.
    Declined(D),
    /// Counted against every budget (in the order of `limits`), and what
    /// was counted with it.
    Counted(Vec<Counted>, T),
}

/// Count a message against every budget of `charge` and, in the same
/// durable transaction as the recipient's budgets, `with` (`Err`: undo
/// everything); see the module documentation for the shared budgets.
pub(super) fn charge_with<T, D>(
    db: &PostgresStorage,
    what: &'static str,
    charge: &Charge,
    now: i64,
    mut with: impl FnMut(&mut Tx<'_>) -> Result<Result<T, D>, postgres::Error>,
) -> StorageResult<Outcome<T, D>> {
    if !charge.limits.iter().any(|l| l.shared) {
        return in_one(db, what, charge, now, with);
    }
    let shared = db.run(
        "counting a message against the server-wide budget",
        Mode::Prelude,
        |t| charge_in(t, charge, now, Part::Shared),
    )?;
    let Charged::Counted(shared) = shared else {
        return in_one(db, what, charge, now, with);
    };
    let own = db.run(what, Mode::Durable, |t| {
        let counted = match charge_in(t, charge, now, Part::Own)? {
            Charged::Counted(counted) => counted,
            refused => return Ok(Outcome::Refused(refused)),
        };
        Ok(match with(t)? {
            Ok(v) => Outcome::Counted(counted, v),
            Err(no) => {
                t.abandon();
                Outcome::Declined(no)
            }
        })
    });
    match own {
        Ok(Outcome::Counted(own, v)) => Ok(Outcome::Counted(merged(charge, shared, own), v)),
        other => {
            // Nothing else was counted: give the shared count back. If
            // that fails too, the budget counts one message too many.
            if let Err(e) = db.run("giving back a server-wide count", Mode::Prelude, |t| {
                refund_in(t, &shared)
            }) {
                tracing::warn!("a refused message stays counted in the server-wide budget: {e}");
            }
            other
        }
    }
}

/// [`charge_with`] as one durable transaction (no shared budget, or the
/// shared one refused).
fn in_one<T, D>(
    db: &PostgresStorage,
    what: &'static str,
    charge: &Charge,
    now: i64,
    mut with: impl FnMut(&mut Tx<'_>) -> Result<Result<T, D>, postgres::Error>,
) -> StorageResult<Outcome<T, D>> {
    db.run(what, Mode::Durable, |t| {
        let counted = match charge_in(t, charge, now, Part::All)? {
            Charged::Counted(counted) => counted,
            refused => return Ok(Outcome::Refused(refused)),
        };
        Ok(match with(t)? {
            Ok(v) => Outcome::Counted(counted, v),
            Err(no) => {
                t.abandon();
                Outcome::Declined(no)
            }
        })
    })
}

/// The counts of the two transactions in the order of `charge.limits`.
fn merged(charge: &Charge, shared: Vec<Counted>, own: Vec<Counted>) -> Vec<Counted> {
    let (mut shared, mut own) = (shared.into_iter(), own.into_iter());
    charge
        .limits
        .iter()
        .filter_map(|l| if l.shared { shared.next() } else { own.next() })
        .collect()
}

/// Count a message against the budgets of `charge` that `part` takes
/// (see [`super::Storage::charge_delivery`]); a refusal abandons the
/// transaction, and `Over` names the budget's index in `charge.limits`.
fn charge_in(
    t: &mut Tx<'_>,
    charge: &Charge,
    now: i64,
    part: Part,
) -> Result<Charged, postgres::Error> {
    let recipient: &[u8] = &charge.recipient;
    // Each budget's row is made if missing and locked (FOR UPDATE)
    // before it is read, so charges on every instance take turns on
    // it; everything is decided before anything is written, and a
    // refusal rolls back (the rows made for it too).
    // Every part checks the list: a recipient who opted out costs the
    // shared budget nothing, not even for a moment.
    {
        let suppressed: bool = t
            .one(
                "SELECT EXISTS (SELECT 1 FROM suppressed WHERE hash = $1)",
                &[bytes(&recipient)],
            )?
            .get(0);
        if suppressed {
            t.abandon();
            return Ok(Charged::Suppressed);
        }
    }
    let mut counted = Vec::with_capacity(charge.limits.len());
    for (i, l) in charge.limits.iter().enumerate() {
        if !part.takes(l) {
            continue;
        }
        let scope: &str = &l.scope;
        t.exec(
            "INSERT INTO delivery_budget (scope, win, start, used, reserve)
             VALUES ($1, $2, $3, 0, 0) ON CONFLICT (scope, win) DO NOTHING",
            &[text(&scope), int(&l.window), int(&now)],
        )?;
        let r = t.one(
            "SELECT start, used, reserve FROM delivery_budget
             WHERE scope = $1 AND win = $2 FOR UPDATE",
            &[text(&scope), int(&l.window)],
        )?;
        let (start, used, reserve): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
        let (used, reserve) = (count32(used), count32(reserve));
        // A window starts with the first message counted in it.
        let (start, used, reserve) = if start + l.window > now && start <= now {
            (start, used, reserve)
        } else {
            (now, 0, 0)
        };
        let (reserve_hit, used, reserve) = if used < l.limit {
            (false, used + 1, reserve)
        } else if charge.reserve_ok && reserve < l.reserve {
            (true, used, reserve + 1)
        } else if charge.force {
            (false, used.saturating_add(1), reserve)
        } else {
            t.abandon();
            return Ok(Charged::Over(i));
        };
        counted.push((
            Counted {
                scope: l.scope.clone(),
                window: l.window,
                start,
                reserve: reserve_hit,
                used,
            },
            reserve,
        ));
    }
    for (k, reserve) in &counted {
        let scope: &str = &k.scope;
        let (used, reserve) = (i64::from(k.used), i64::from(*reserve));
        t.exec(
            "UPDATE delivery_budget SET start = $3, used = $4, reserve = $5
             WHERE scope = $1 AND win = $2",
            &[
                text(&scope),
                int(&k.window),
                int(&k.start),
                int(&used),
                int(&reserve),
            ],
        )?;
    }
    Ok(Charged::Counted(counted.into_iter().map(|x| x.0).collect()))
}

/// Give back the counts of a message that was not sent (see
/// [`super::Storage::refund_delivery`]).
pub(super) fn refund_in(t: &mut Tx<'_>, counted: &[Counted]) -> Result<(), postgres::Error> {
    for k in counted {
        let scope: &str = &k.scope;
        // One conditional UPDATE each: never below zero, and only in the
        // window it was counted in.
        let sql = if k.reserve {
            "UPDATE delivery_budget SET reserve = reserve - 1
             WHERE scope = $1 AND win = $2 AND start = $3 AND reserve > 0"
        } else {
            "UPDATE delivery_budget SET used = used - 1
             WHERE scope = $1 AND win = $2 AND start = $3 AND used > 0"
        };
        t.exec(sql, &[text(&scope), int(&k.window), int(&k.start)])?;
    }
    Ok(())
}
