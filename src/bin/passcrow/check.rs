//! `check [-b] [-x DAYS] [NAME...]`: is each pack still recoverable, asked
//! of the servers without sending a code; and is it due for review.
//!
//! Exit status: 0 when every pack can be recovered from the escrows that
//! answered, 1 when any cannot, 3 when it cannot be told (servers without
//! the `status` method decide it), 2 on usage errors.

use std::io::Write;
use std::time::Duration;

use passcrow::client::{CallOptions, PackHealth, Recoverable, RenewalReason};
use passcrow::proto::untrusted::clean_text;

use crate::args::{client, Args};
use crate::manage::local_time;
use crate::{CliError, CliResult};

/// Escrows expiring within this many days make a pack due, unless `-x`.
const DEFAULT_WINDOW_DAYS: u32 = 30;

fn health_json(h: &PackHealth, reasons: &[RenewalReason]) -> serde_json::Value {
    serde_json::json!({
        "name": h.name,
        "recoverable": h.recoverable.as_str(),
        "min-shares": h.min_shares,
        "healthy": h.healthy,
        "margin": h.margin,
        "escrows": h.escrows.iter().map(|e| serde_json::json!({
            "prefix": e.prefix.map(|c| c.to_string()),
            "kind": e.kind,
            "server": e.server,
            "state": e.state.as_str(),
            "expires": e.expires,
            "proven": e.proven,
            "detail": e.detail,
        })).collect::<Vec<_>>(),
        "review-due": !reasons.is_empty(),
        "reasons": reasons.iter().map(|r| r.describe()).collect::<Vec<_>>(),
    })
}

pub(crate) fn cmd_check(args: &[String]) -> CliResult {
    let a = Args::parse(args, "C:D:H:Tbx:", "")?;
    let batch = a.flag('b');
    let window = Duration::from_secs(a.number('x')?.unwrap_or(DEFAULT_WINDOW_DAYS) as u64 * 86400);
    let c = client(&a, batch)?;
    let names: Vec<String> = if a.bare.is_empty() {
        c.list()?.into_iter().map(|p| p.name).collect()
    } else {
        a.bare.clone()
    };
    if names.is_empty() {
        eprintln!("*** (no passcrow data) ***");
        return Ok(());
    }
    let (mut any_no, mut any_unknown) = (false, false);
    let mut json = vec![];
    let mut out = std::io::stdout().lock();
    for name in &names {
        let pack = match c.pack(name) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{name}: cannot be read: {e}");
                any_no = true;
                continue;
            }
        };
        let due = c.renewal_due_for(name, &pack, window, &CallOptions::default())?;
        let Some(h) = due.health else { continue };
        match h.recoverable {
            Recoverable::No => any_no = true,
            Recoverable::Unknown => any_unknown = true,
            Recoverable::Yes => {}
        }
        if batch {
            json.push(health_json(&h, &due.reasons));
            continue;
        }
        for e in &h.escrows {
            let (date, _) = local_time(e.expires);
            let prefix = e
                .prefix
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into());
            let proof = if e.proven { " (proven)" } else { "" };
            let _ = writeln!(
                out,
                "  {prefix} {:<8} {:<32} {:<12} expires {date}{proof}{}",
                e.kind,
                e.server,
                e.state.as_str(),
                e.detail
                    .as_deref()
                    .map(|d| format!(": {}", clean_text(d, 200)))
                    .unwrap_or_default()
            );
        }
        let verdict = match h.recoverable {
            Recoverable::Yes => format!(
                "recoverable, margin {} ({} of {} needed escrows held)",
                h.margin, h.healthy, h.min_shares
            ),
            Recoverable::No => format!(
                "NOT recoverable now ({} of {} needed escrows held)",
                h.healthy, h.min_shares
            ),
            Recoverable::Unknown => format!(
                "cannot be told: servers without the status method decide it \
                 ({} of {} needed escrows known to be held)",
                h.healthy, h.min_shares
            ),
        };
        let _ = writeln!(out, "{name}: {verdict}");
        for r in &due.reasons {
            let _ = writeln!(out, "  review due: {}", r.describe());
        }
        if h.recoverable != Recoverable::Yes || h.margin == 0 {
            eprintln!(
                "passcrow: to repair {name:?}, run `passcrow renew -n {name} FILE` with the secret"
            );
        }
    }
    let status: u8 = if any_no {
        1
    } else if any_unknown {
        3
    } else {
        0
    };
    if batch {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "packs": json, "status": status }))
                .unwrap_or_default()
        );
    }
    match status {
        0 => Ok(()),
        s => Err(CliError::Exit(s)),
    }
}
