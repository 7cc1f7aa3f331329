//! `protect` and `renew`: the policy from the options, the secret from a
//! file or standard input.

use std::io::{IsTerminal, Read};

use passcrow::client::{Client, Ephemeral, ProtectOptions, TotpEnrolment};
use passcrow::policy::{parse_ratio, PolicyRequest, RecoveryPolicy};
use passcrow::proto::to_reference_json;
use passcrow::{Error, SecretBytes};

use crate::args::{client, Args};
use crate::manage::local_time;
use crate::{CliError, CliResult};

/// The policy from -p, bare words, -r, -d, -m and the defaults (unless -I),
/// resolved by the core ([`Client::policy`]).
pub(crate) fn make_policy(
    a: &Args,
    bare: &[String],
    c: &Client,
) -> Result<RecoveryPolicy, CliError> {
    let ignore_defaults = a.flag('I');
    let mut texts = a.all('p');
    if !bare.is_empty() {
        if bare.iter().any(|w| w == "via") {
            texts.push(bare.join(" "));
        } else {
            texts.extend(bare.iter().cloned());
        }
    }
    if texts.is_empty() && (ignore_defaults || c.defaults().ids.is_empty()) {
        return Err(CliError::Usage("At least one policy is required.".into()));
    }
    let mut request = PolicyRequest {
        identities: texts,
        expiration_days: a.number('d')?,
        timeout_minutes: a.number('m')?,
        ignore_defaults,
        ..Default::default()
    };
    match a.one('r') {
        Some(r) => {
            // `-r N` means N of however many identities there are.
            let (n, m) = parse_ratio(r, None).map_err(|e| CliError::Usage(e.to_string()))?;
            request.n = Some(n);
            request.m = r.contains('/').then_some(m);
        }
        None if ignore_defaults => {
            return Err(CliError::Usage("Please specify a ratio.".into()));
        }
        None => {}
    }
    c.policy(&request).map_err(|e| match e {
        Error::BadInput(m) if m.starts_with("no server for ") => CliError::Usage(format!(
            "No server found for: {}",
            &m["no server for ".len()..]
        )),
        Error::BadInput(m) if m.starts_with("ratio ") => CliError::Usage(m),
        other => CliError::Usage(format!("Bad policy: {other}")),
    })
}

pub(crate) fn read_secret(source: &str) -> Result<SecretBytes, CliError> {
    let mut buf = Vec::new();
    let r = if source == "-" {
        std::io::stdin().lock().read_to_end(&mut buf)
    } else {
        std::fs::File::open(source).and_then(|mut f| f.read_to_end(&mut buf))
    };
    let buf = SecretBytes::new(buf);
    r.map_err(|e| CliError::Usage(format!("{source}: {e}")))?;
    Ok(buf)
}

pub(crate) fn cmd_protect(args: &[String], renew: bool) -> CliResult {
    let a = Args::parse(args, "C:D:H:TIp:r:d:m:beEn:qf", "np")?;
    let mut bare = a.bare.clone();
    let source = if bare.is_empty() {
        "-".to_string()
    } else {
        bare.remove(0)
    };
    let ephemeral = if a.flag('e') {
        Ephemeral::Both
    } else if a.flag('E') {
        Ephemeral::Only
    } else {
        Ephemeral::No
    };
    let batch = a.flag('b');
    let names = a.all('n');
    let name = if !names.is_empty() {
        names.join(" ")
    } else if source == "-" {
        if ephemeral == Ephemeral::Only {
            "Data".to_string()
        } else {
            return Err(CliError::Usage("Please provide a name (-n).".into()));
        }
    } else {
        source.clone()
    };
    let c = client(&a, batch)?;
    let pol = make_policy(&a, &bare, &c)?;
    let data = read_secret(&source)?;
    let result = if renew {
        c.renew(&name, data.expose_secret(), Some(&pol))?
    } else {
        let opts = ProtectOptions {
            ephemeral,
            replace: a.flag('f'),
            ..Default::default()
        };
        c.protect(&name, data.expose_secret(), &pol, &opts)?
    };
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    for f in &result.cleanup_failures {
        eprintln!("passcrow: warning: could not delete an old escrow: {f}");
    }
    for w in &result.warnings {
        eprintln!("passcrow: warning: {w}");
    }
    for t in &result.totp {
        print_totp(t, batch);
    }
    if let Some(info) = &result.ephemeral {
        if batch {
            println!("{}", to_reference_json(&info.record));
        } else {
            let (date, _) = local_time(info.expiration);
            println!(
                "Your data has been placed in ephemeral escrow.\n\n\
                 It can be recovered without any local file, with the command below.\n\
                 Write it down or print it, and keep it safe:\n\n    \
                 passcrow recover {}\n\n\
                 The escrowed data expires on {date}.",
                info.recovery_id().expose_secret()
            );
        }
    } else if !batch {
        let p = &result.pack;
        let (date, _) = local_time(p.expires_ts());
        eprintln!(
            "Protected {:?}: {} of {} codes will recover it; escrows expire {date}.",
            name,
            p.min_shares,
            p.prefixed_escrows().len()
        );
    }
    Ok(())
}

/// The enrolment of a `totp:` identity: its URI, and (on a terminal) a
/// QR code of it to scan with the authenticator app. Shown once: the
/// secret is nowhere else on this device. In batch mode, a JSON object.
fn print_totp(t: &TotpEnrolment, batch: bool) {
    let uri = t.uri.expose_secret();
    if batch {
        let v = serde_json::json!({
            "totp-label": t.label,
            "server": t.server,
            "prefix": t.prefix.map(|p| p.to_string()),
            "otpauth-uri": uri,
        });
        println!("{}", to_reference_json(&v));
        return;
    }
    let route = match t.prefix {
        Some(p) => format!(
            "When recovering, type the 6 digits the app shows (with several \
             authenticator identities in one pack, type {p} before them)."
        ),
        None => "It verifies the ephemeral copy: when recovering with the user key, \
                 type the 6 digits the app shows."
            .to_string(),
    };
    println!(
        "\nAdd this to your authenticator app now: it is shown only this once.\n\
         Account \"Passcrow: {}\", checked by {}.\n{route}\n",
        t.label, t.server
    );
    if std::io::stdout().is_terminal() {
        if let Some(qr) = terminal_qr(uri) {
            println!("{qr}");
        }
    }
    println!("    {uri}\n");
}

/// A QR code of `text` in Unicode half blocks, drawn light on dark (most
/// terminals): the dark modules are the background.
fn terminal_qr(text: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}
