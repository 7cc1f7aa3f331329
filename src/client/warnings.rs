//! Policy warnings at `protect`: thresholds one server can meet alone.
//! Warnings, not refusals: the user may have reasons.

use std::collections::BTreeMap;

use crate::policy::RecoveryPolicy;

/// Warnings for a policy whose escrows are `policy.ids[reserve..]`
/// (`reserve` = 1 when the first identity holds the ephemeral copy) and
/// `n` of them recover.
pub(crate) fn policy_warnings(policy: &RecoveryPolicy, reserve: usize, n: u32) -> Vec<String> {
    let mut per_server: BTreeMap<&str, u32> = BTreeMap::new();
    for idp in policy.ids.iter().skip(reserve) {
        if let Some(s) = idp.server.as_deref() {
            *per_server.entry(s).or_insert(0) += 1;
        }
    }
    let mut out = vec![];
    let ephemeral = if reserve == 1 {
        policy.ids.first().and_then(|i| i.server.as_deref())
    } else {
        None
    };
    for (server, k) in &per_server {
        if Some(*server) == ephemeral {
            continue;
        }
        // One identity alone (1 of 1) is the user's plain choice.
        if *k >= n && *k > 1 {
            out.push(format!(
                "{server} would hold {k} of the shares and {n} recover the secret: \
                 with the pack, that server's operator alone could complete a recovery \
                 once it starts (no other server would need to agree)"
            ));
        }
    }
    if let Some(server) = ephemeral {
        let k = per_server.get(server).copied().unwrap_or(0);
        if k >= n {
            out.push(format!(
                "{server} would keep the ephemeral copy of the pack and {k} of the shares, \
                 and {n} recover the secret: its operator could recover the secret alone \
                 once recovery starts"
            ));
        }
    }
    out
}
