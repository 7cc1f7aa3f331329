//! Options as python-passcrow parses them, the directories they name,
//! and the client they configure.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use passcrow::client::{resolve_dirs, Client, ClientConfig, KdfConcurrency};

use crate::{CliError, ALLOW_PLAIN_HTTP};

/// Parsed options, in the manner of python-passcrow's `arg_dict`: each
/// option is `-X`; an option listed with `:` takes the next argument.
pub(crate) struct Args {
    pub(crate) opts: HashMap<char, Vec<String>>,
    pub(crate) flags: HashMap<char, bool>,
    pub(crate) bare: Vec<String>,
    /// `--allow-plain-http`: plain http:// to hosts that are not loopback.
    pub(crate) allow_plain_http: bool,
}

impl Args {
    pub(crate) fn parse(args: &[String], spec: &str, multi: &str) -> Result<Args, CliError> {
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

    pub(crate) fn flag(&self, c: char) -> bool {
        self.flags.get(&c).copied().unwrap_or(false)
    }

    pub(crate) fn one(&self, c: char) -> Option<&str> {
        self.opts
            .get(&c)
            .and_then(|v| v.first())
            .map(|s| s.as_str())
    }

    pub(crate) fn all(&self, c: char) -> Vec<String> {
        self.opts.get(&c).cloned().unwrap_or_default()
    }

    pub(crate) fn number(&self, c: char) -> Result<Option<u32>, CliError> {
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

pub(crate) fn dirs(a: &Args) -> Result<(PathBuf, PathBuf), CliError> {
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

pub(crate) fn client(a: &Args, batch: bool) -> Result<Client, CliError> {
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
    cfg.ephemeral_kdf = match std::env::var("PASSCROW_EPHEMERAL_KDF").as_deref() {
        Err(_) | Ok("") | Ok("two-at-a-time") => KdfConcurrency::TwoAtATime,
        Ok("sequential") | Ok("one-at-a-time") => KdfConcurrency::OneAtATime,
        Ok(other) => {
            return Err(CliError::Usage(format!(
                "PASSCROW_EPHEMERAL_KDF must be two-at-a-time or sequential, not {:?}",
                other.chars().take(40).collect::<String>()
            )))
        }
    };
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
