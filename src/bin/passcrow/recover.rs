//! `recover`: ask for codes (and say where they went), or recover with
//! the codes given.

use std::io::Write;

use passcrow::client::{Recovered, Verification};
use passcrow::pack::{write_atomic, RecoveryPack};
use passcrow::proto::{explain_kind, to_reference_json};
use serde::Serialize;

use crate::args::{client, Args};
use crate::{CliError, CliResult};

#[derive(Serialize)]
pub(crate) struct BatchHint<'a> {
    expiration: i64,
    hint: &'a str,
    #[serde(rename = "action-url", skip_serializing_if = "Option::is_none")]
    action_url: Option<&'a str>,
    prefix: String,
    kind: &'a str,
}

#[derive(Serialize)]
pub(crate) struct BatchVerify<'a> {
    name: &'a str,
    #[serde(rename = "min-shares")]
    min_shares: u32,
    timeout: i64,
    verifications: Vec<BatchHint<'a>>,
    recovered: bool,
}

#[derive(Serialize)]
pub(crate) struct BatchRecovered<'a> {
    name: &'a str,
    data: String,
    recovered: bool,
}

pub(crate) fn print_verification(name: &str, v: &Verification, batch: bool) {
    let now = passcrow::util::clock::unix_now();
    let timeout = v
        .hints
        .iter()
        .map(|h| h.expiration)
        .min()
        .unwrap_or(now)
        .saturating_sub(now);
    if batch {
        let b = BatchVerify {
            name,
            min_shares: v.min_shares,
            timeout,
            verifications: v
                .hints
                .iter()
                .map(|h| BatchHint {
                    expiration: h.expiration,
                    hint: &h.hint,
                    action_url: h.action_url.as_deref(),
                    prefix: h.prefix.to_string(),
                    kind: explain_kind(&h.kind),
                })
                .collect(),
            recovered: false,
        };
        println!("{}", to_reference_json(&b));
        return;
    }
    let mut text = String::from("Verification initiated!\n\n");
    let urls: Vec<String> = v
        .hints
        .iter()
        .filter_map(|h| {
            h.action_url
                .as_ref()
                .map(|u| format!("    * {u} (login hint: {})", h.hint))
        })
        .collect();
    let apps = v.hints.iter().filter(|h| h.kind == "totp").count();
    let sent: Vec<String> = v
        .hints
        .iter()
        .filter(|h| h.action_url.is_none())
        .map(|h| {
            if h.kind == "totp" {
                // The code is in the app: typed as it shows it.
                let prefix = if apps > 1 {
                    format!(", after {}", h.prefix)
                } else {
                    String::new()
                };
                return format!("    * {} (type its 6 digits{prefix})", h.hint);
            }
            format!(
                "    * {} {} (code starts with {})",
                explain_kind(&h.kind),
                h.hint,
                h.prefix
            )
        })
        .collect();
    if !sent.is_empty() {
        text.push_str(&format!(
            "You should receive {} verification code(s):\n{}\n\n",
            sent.len(),
            sent.join("\n")
        ));
    }
    if !urls.is_empty() {
        text.push_str(&format!(
            "You can find verification codes at:\n{}\n\n",
            urls.join("\n")
        ));
    }
    for f in &v.failures {
        text.push_str(&format!("(Could not start one verification: {f})\n\n"));
    }
    let examples = ["1234567", "2321123", "3456789"];
    text.push_str(&format!(
        "When you have the codes, run `passcrow recover` again with the codes\n\
         as arguments, for example:\n\n    passcrow recover \"{name}\" {}\n\n\
         You must give at least {} code(s) within {} minutes.",
        examples[..(v.min_shares as usize).min(3)].join(" "),
        v.min_shares,
        (timeout as f64 / 60.0).round()
    ));
    println!("{text}");
}

pub(crate) fn cmd_recover(args: &[String]) -> CliResult {
    let a = Args::parse(args, "C:D:H:To:bq", "")?;
    let mut bare = a.bare.clone();
    if bare.is_empty() {
        return Err(CliError::Usage("Recover what?".into()));
    }
    let name = bare.remove(0);
    let codes = bare;
    let batch = a.flag('b');
    let c = client(&a, batch)?;
    let mut pack: RecoveryPack = c.pack(&name)?;
    let mut shown_name = name.clone();
    if !codes.is_empty() {
        if codes.len() < pack.min_shares as usize {
            return Err(CliError::Usage(format!(
                "Need at least {} verification codes",
                pack.min_shares
            )));
        }
        let recovered = match c.recover(&pack, &codes) {
            Err(passcrow::Error::Pending { release_at, .. }) => {
                print_pending(&name, release_at, batch);
                return Ok(());
            }
            r => r?,
        };
        match recovered {
            Recovered::Secret(secret) => {
                if let Some(out) = a.one('o') {
                    write_atomic(std::path::Path::new(out), secret.expose_secret())?;
                    if !batch {
                        eprintln!("Recovered {name:?} into {out}");
                    }
                }
                if batch {
                    let b = BatchRecovered {
                        name: &name,
                        data: if a.one('o').is_some() {
                            String::new()
                        } else {
                            <base64ct::Base64 as base64ct::Encoding>::encode_string(
                                secret.expose_secret(),
                            )
                        },
                        recovered: true,
                    };
                    println!("{}", to_reference_json(&b));
                } else if a.one('o').is_none() {
                    let mut out = std::io::stdout().lock();
                    out.write_all(secret.expose_secret())
                        .and_then(|_| out.flush())
                        .map_err(|e| CliError::Failed(format!("writing the secret: {e}")))?;
                }
                return Ok(());
            }
            Recovered::Pack {
                name: new_name,
                pack: p,
            } => {
                if !batch {
                    eprintln!(
                        "Restored the recovery pack from ephemeral escrow (saved as {new_name:?}).\n\
                         Now starting verification of its escrows."
                    );
                }
                pack = p;
                shown_name = new_name;
            }
        }
    }
    let v = c.verify(&pack)?;
    print_verification(&shown_name, &v, batch);
    Ok(())
}

/// The codes were right, but the escrows asked for a release delay: when
/// to come back.
fn print_pending(name: &str, release_at: i64, batch: bool) {
    if batch {
        let b = serde_json::json!({
            "name": name, "recovered": false, "pending-until": release_at,
        });
        println!("{}", to_reference_json(&b));
        return;
    }
    let (date, time) = crate::manage::local_time(release_at);
    eprintln!(
        "Recovery pending: the codes were right, but the escrows asked for a release delay.\n\
         Every identity of those escrows was told, and any of them can stop it.\n\
         Come back after {date} {time} and run the same command again:\n\n    \
         passcrow recover {name:?} CODES...\n\n\
         (No new code is needed: the same ones do.)"
    );
}
