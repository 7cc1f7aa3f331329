//! `passcrow`: the command line tool, accepting python-passcrow 0.0.7's
//! command lines as written.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use passcrow::client::{
    create_private_dir, resolve_dirs, Client, ClientConfig, Ephemeral, ProtectOptions, Recovered,
    Verification,
};
use passcrow::pack::{write_atomic, RecoveryPack};
use passcrow::policy::{parse_ratio, Defaults, PolicyRequest, RecoveryPolicy, ServerChoice};
use passcrow::proto::{explain_kind, to_reference_json};
use passcrow::Error;
use passcrow::SecretBytes;
use serde::Serialize;

/// The one long option: allow plain http:// to hosts that are not
/// loopback (shares and escrow keys then cross the network in clear).
const ALLOW_PLAIN_HTTP: &str = "--allow-plain-http";

const TEST_SERVER: &str = "email, tel, sms via passcrow-test.mailpile.is";

enum CliError {
    Usage(String),
    Failed(String),
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Failed(e.to_string())
    }
}

type CliResult = Result<(), CliError>;

/// Parsed options, in the manner of python-passcrow's `arg_dict`: each
/// option is `-X`; an option listed with `:` takes the next argument.
struct Args {
    opts: HashMap<char, Vec<String>>,
    flags: HashMap<char, bool>,
    bare: Vec<String>,
    /// `--allow-plain-http`: plain http:// to hosts that are not loopback.
    allow_plain_http: bool,
}

impl Args {
    fn parse(args: &[String], spec: &str, multi: &str) -> Result<Args, CliError> {
        let mut a = Args {
            opts: HashMap::new(),
            flags: HashMap::new(),
            bare: vec![],
            allow_plain_http: false,
        };
        let mut pending: Option<char> = None;
        for arg in args {
            if arg == ALLOW_PLAIN_HTTP && pending.is_none() {
                a.allow_plain_http = true;
            } else if arg.starts_with('-') && arg.len() > 1 {
                let c = arg.chars().nth(1).unwrap_or('-');
                let Some(pos) = spec.find(c).filter(|_| c != ':') else {
                    return Err(CliError::Usage(format!("Bad option: {arg}")));
                };
                let takes = spec[pos + c.len_utf8()..].starts_with(':');
                if !multi.contains(c) && (a.opts.contains_key(&c) || a.flags.contains_key(&c)) {
                    return Err(CliError::Usage(format!("Too many options: {arg}")));
                }
                if arg.chars().count() > 2 {
                    return Err(CliError::Usage(format!("Bad option: {arg}")));
                }
                if takes {
                    a.opts.entry(c).or_default();
                    pending = Some(c);
                } else {
                    a.flags.insert(c, true);
                    pending = None;
                }
            } else if let Some(c) = pending.take() {
                a.opts.entry(c).or_default().push(arg.clone());
            } else {
                a.bare.push(arg.clone());
            }
        }
        for (c, v) in &a.opts {
            if v.is_empty() {
                return Err(CliError::Usage(format!("Option -{c} needs a value")));
            }
        }
        Ok(a)
    }

    fn flag(&self, c: char) -> bool {
        self.flags.get(&c).copied().unwrap_or(false)
    }

    fn one(&self, c: char) -> Option<&str> {
        self.opts
            .get(&c)
            .and_then(|v| v.first())
            .map(|s| s.as_str())
    }

    fn all(&self, c: char) -> Vec<String> {
        self.opts.get(&c).cloned().unwrap_or_default()
    }

    fn number(&self, c: char) -> Result<Option<u32>, CliError> {
        match self.one(c) {
            None => Ok(None),
            Some(v) => match v.parse::<u32>() {
                Ok(0) => Ok(None),
                Ok(n) => Ok(Some(n)),
                Err(_) => Err(CliError::Usage(format!("-{c}: {v:?} is not a number"))),
            },
        }
    }
}

fn dirs(a: &Args) -> Result<(PathBuf, PathBuf), CliError> {
    let (h, c, d) = (a.one('H'), a.one('C'), a.one('D'));
    if h.is_some() && (c.is_some() || d.is_some()) {
        return Err(CliError::Usage(
            "Please use option -H or -C/-D (or neither), but not both.".into(),
        ));
    }
    if a.flag('T') {
        return Err(CliError::Usage(
            "test mode (-T) is not supported; run passcrow-server on loopback instead".into(),
        ));
    }
    let (config, data) = match h {
        Some(h) => (Some(PathBuf::from(h)), Some(PathBuf::from(h))),
        None => (c.map(PathBuf::from), d.map(PathBuf::from)),
    };
    // PASSCROW_HOME/CONFIG/DATA count only when no -H, -C or -D was given.
    let env_override = config.is_none() && data.is_none();
    Ok(resolve_dirs(config, data, env_override))
}

fn client(a: &Args, batch: bool) -> Result<Client, CliError> {
    let (conf, data) = dirs(a)?;
    for d in [&conf, &data] {
        if !d.is_dir() {
            return Err(CliError::Failed(format!(
                "Directory not found: {} (run `passcrow init` first)",
                d.display()
            )));
        }
    }
    let mut cfg = ClientConfig::new(conf, data);
    cfg.allow_plain_http = a.allow_plain_http;
    let mut c = Client::new(cfg)?;
    let tty = std::io::stderr().is_terminal();
    if !batch {
        c.set_log(Arc::new(|m: &str| eprintln!("passcrow: {m}")));
    }
    if tty {
        c.set_progress(Arc::new(|p: passcrow::payment::Progress| {
            eprint!(
                "\rpasscrow: paying with proof of work: {} of ~{} attempts, {:.1} s ",
                p.attempts,
                p.expected,
                p.elapsed.as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        }));
    }
    Ok(c)
}

fn local_time(ts: i64) -> (String, String) {
    use chrono::{Local, TimeZone};
    match Local.timestamp_opt(ts, 0).single() {
        Some(t) => (
            t.format("%Y-%m-%d").to_string(),
            t.format("%H:%M").to_string(),
        ),
        None => ("????-??-??".into(), "??:??".into()),
    }
}

fn cmd_init(args: &[String]) -> CliResult {
    let a = Args::parse(args, "C:D:H:T", "")?;
    if !a.bare.is_empty() {
        return Err(CliError::Usage(format!(
            "Invalid arguments: {}",
            a.bare.join(" ")
        )));
    }
    let (conf, data) = dirs(&a)?;
    for d in [&conf, &data] {
        if !d.is_dir() {
            create_private_dir(d)?;
            eprintln!("Created {}", d.display());
        }
    }
    let rc = conf.join("policy.rc");
    if rc.exists() {
        Defaults::load(&rc)?;
        eprintln!(
            "Your default Passcrow policy is here (kept as it was): {}",
            rc.display()
        );
        return Ok(());
    }
    let d = Defaults {
        servers: vec![ServerChoice::parse(TEST_SERVER)?],
        ..Defaults::default()
    };
    d.save(&rc)?;
    eprintln!(
        "NOTE: `passcrow-test.mailpile.is` is now the default server for e-mail and SMS.\n      \
         It is for testing only and deletes all data after 30 days, whatever\n      \
         expiration was asked for.\n"
    );
    eprintln!("Edit your default Passcrow policy here: {}", rc.display());
    Ok(())
}

fn cmd_list(args: &[String]) -> CliResult {
    let a = Args::parse(args, "C:D:H:Tbx:", "")?;
    if !a.bare.is_empty() {
        return Err(CliError::Usage(format!(
            "Invalid arguments: {}",
            a.bare.join(" ")
        )));
    }
    let batch = a.flag('b');
    let c = client(&a, true)?;
    let mut packs = match a.number('x')? {
        Some(days) => c.expiring(Duration::from_secs(days as u64 * 86400))?,
        None => c.list()?,
    };
    if packs.is_empty() {
        eprintln!("*** (no passcrow data) ***");
        return Ok(());
    }
    packs.sort_by(|x, y| (x.created_ts, &x.name).cmp(&(y.created_ts, &y.name)));
    let mut out = std::io::stdout().lock();
    if !batch {
        let _ = writeln!(
            out,
            "{:<10}{:>6}  {:<10}{:>6}  NAME",
            "CREATED", "", "EXPIRES", ""
        );
    }
    for p in &packs {
        if let Some(e) = &p.error {
            eprintln!("{}: unreadable: {e}", p.name);
            continue;
        }
        let (cd, ct) = local_time(p.created_ts);
        let (ed, et) = local_time(p.expires_ts);
        if batch {
            let _ = writeln!(out, "{cd}\t{ct}\t{ed}\t{et}\t{}", p.name);
        } else {
            let _ = writeln!(out, "{cd:<10}{ct:>6}  {ed:<10}{et:>6}  {}", p.name);
        }
    }
    Ok(())
}

/// The policy from -p, bare words, -r, -d, -m and the defaults (unless -I),
/// resolved by the core ([`Client::policy`]).
fn make_policy(a: &Args, bare: &[String], c: &Client) -> Result<RecoveryPolicy, CliError> {
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

fn read_secret(source: &str) -> Result<SecretBytes, CliError> {
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

fn cmd_protect(args: &[String], renew: bool) -> CliResult {
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

#[derive(Serialize)]
struct BatchHint<'a> {
    expiration: i64,
    hint: &'a str,
    #[serde(rename = "action-url", skip_serializing_if = "Option::is_none")]
    action_url: Option<&'a str>,
    prefix: String,
    kind: &'a str,
}

#[derive(Serialize)]
struct BatchVerify<'a> {
    name: &'a str,
    #[serde(rename = "min-shares")]
    min_shares: u32,
    timeout: i64,
    verifications: Vec<BatchHint<'a>>,
    recovered: bool,
}

#[derive(Serialize)]
struct BatchRecovered<'a> {
    name: &'a str,
    data: String,
    recovered: bool,
}

fn print_verification(name: &str, v: &Verification, batch: bool) {
    let now = passcrow::util::clock::unix_now();
    let timeout = v.hints.iter().map(|h| h.expiration).min().unwrap_or(now) - now;
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
    let sent: Vec<String> = v
        .hints
        .iter()
        .filter(|h| h.action_url.is_none())
        .map(|h| {
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

fn cmd_recover(args: &[String]) -> CliResult {
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
        match c.recover(&pack, &codes)? {
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

fn cmd_forget(args: &[String]) -> CliResult {
    let a = Args::parse(args, "C:D:H:Tlq", "")?;
    if a.bare.is_empty() {
        return Err(CliError::Usage("Forget what?".into()));
    }
    let c = client(&a, false)?;
    let mut failed = false;
    for name in &a.bare {
        match c.forget(name, a.flag('l')) {
            Ok(f) => eprintln!("Forgot {name:?} ({} escrows deleted on servers)", f.deleted),
            Err(e) => {
                eprintln!("Failed({name}): {e}");
                failed = true;
            }
        }
    }
    if failed {
        Err(CliError::Failed(
            "some packs were not forgotten (use -l to forget them locally only)".into(),
        ))
    } else {
        Ok(())
    }
}

const GLOBAL_HELP: &str = "\
Global options:
    -C <path>  Directory for configuration (PASSCROW_CONFIG)
    -D <path>  Directory for recovery packs (PASSCROW_DATA)
    -H <path>  One directory for both (PASSCROW_HOME)
    --allow-plain-http
               Allow plain http:// servers that are not on loopback (shares
               and escrow keys then cross the network unencrypted)";

const POLICY_HELP: &str = "\
Policy options:
    -p <POLICY>   A verification policy (may be repeated)
    -r <N>[/<M>]  Require N of M identities; without M, M = number of policies
    -d <DAYS>     Ask servers to keep the escrow this many days
    -m <MINUTES>  Verification codes live this many minutes
    -I            Ignore the defaults in policy.rc

A policy is: <ID>[, notify=<ID>][ via <SERVER>]
    email:a@example.org via passcrow.example.org
    a@example.org, notify=b@example.org via passcrow.example.org
    +3545885522 via sms.passcrow.example.org
Bare e-mail addresses and phone numbers get email: and tel: added. Without
`via`, a server is chosen from policy.rc. A server written http://host:port is
reached over plain HTTP (loopback testing only); a bare name means HTTPS.";

fn help_for(cmd: &str) -> Option<String> {
    let body = match cmd {
        "init" => "init [-H|-C|-D <path>]\n\n    Create the pack directory and a default policy.rc to edit.".to_string(),
        "list" => "list [-b] [-x <DAYS>]\n\n    Show the recovery packs: created, expires, name.\n\n    \
                   -b            Batch mode: tab-separated columns\n    \
                   -x <DAYS>     Only packs whose escrows expire within DAYS days".to_string(),
        "protect" | "renew" => format!(
            "{cmd} [-n NAME] [-p POLICY]... [-r N/M] [-d DAYS] [-m MINUTES] [-e|-E] [-b] [-f] [FILE|-] [POLICY...]\n\n    \
             {}\n\n    \
             -b            Batch mode (machine-readable output)\n    \
             -n <NAME>     Name of the secret (required when reading stdin)\n    \
             -e            Ephemeral: also escrow the pack, to recover without local files\n    \
             -E            Ephemeral only: no local pack\n    \
             -f            Replace an existing pack of that name (its escrows are deleted)\n\n{POLICY_HELP}",
            if cmd == "renew" {
                "Escrow a secret afresh (yearly renewal): the new pack replaces the old one,\n    \
                 and only then are the old escrows deleted. Give the secret again."
            } else {
                "Protect a secret (a file, or - for stdin): split its key among servers."
            }
        ),
        "recover" => "recover [-b] [-o FILE] NAME|SERVER:KEY [CODES...]\n\n    \
                      Without codes, ask the servers to send verification codes. With codes,\n    \
                      recover the secret (to stdout, or FILE with -o). Ephemeral recovery\n    \
                      (SERVER:KEY) first restores the pack, then asks for codes again.\n\n    \
                      -b            Batch mode: JSON output, recovered data base64-encoded\n    \
                      -o <FILE>     Write the secret to FILE (mode 0600)".to_string(),
        "forget" => "forget [-l] NAME...\n\n    Delete packs and their escrows on the servers.\n\n    \
                     -l            Local only: do not contact the servers".to_string(),
        "help" => "help [COMMAND]".to_string(),
        _ => return None,
    };
    Some(format!("passcrow {body}\n\n{GLOBAL_HELP}"))
}

fn usage() -> String {
    format!(
        "passcrow [forget|help|init|list|protect|recover|renew]\n\n\
         libpasscrow {}: password recovery for locally encrypted data,\n\
         compatible with python-passcrow 0.0.7.\n\n\
         A secret is encrypted with a random key; the key is split among\n\
         independent servers, which give their parts back once you prove you\n\
         control an e-mail address or phone number.\n\n\
         Start with `passcrow init`, then edit policy.rc.\n\
         Run `passcrow help COMMAND` for details.",
        env!("CARGO_PKG_VERSION")
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first().cloned() else {
        eprintln!("{}\n\nError: Need a valid command to continue", usage());
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let r = match cmd.as_str() {
        "init" => cmd_init(rest),
        "list" => cmd_list(rest),
        "protect" => cmd_protect(rest, false),
        "renew" => cmd_protect(rest, true),
        "recover" => cmd_recover(rest),
        "forget" => cmd_forget(rest),
        "server_init" => Err(CliError::Failed(
            "use `passcrow-server init DIR` to set up a server".into(),
        )),
        "help" | "--help" | "-h" => {
            match rest.first().and_then(|c| help_for(c)) {
                Some(h) => println!("{h}"),
                None => println!("{}", usage()),
            }
            Ok(())
        }
        "--version" | "version" => {
            println!("passcrow (libpasscrow) {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        _ => Err(CliError::Usage("Need a valid command to continue".into())),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(m)) => {
            match help_for(&cmd) {
                Some(h) => eprintln!("{h}\n\nError: {m}"),
                None => eprintln!("{}\n\nError: {m}", usage()),
            }
            ExitCode::from(2)
        }
        Err(CliError::Failed(m)) => {
            eprintln!("passcrow {cmd}: {m}");
            ExitCode::from(1)
        }
    }
}
