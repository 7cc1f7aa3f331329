//! `passcrow`: the command line tool, accepting python-passcrow 0.0.7's
//! command lines as written.
//!
//! `args.rs` parses options as python-passcrow does and builds the client;
//! `protect.rs`, `recover.rs` and `manage.rs` (init, list, forget) are the
//! verbs.

mod args;
mod check;
mod manage;
mod protect;
mod recover;

use std::process::ExitCode;

use check::cmd_check;
use manage::{cmd_forget, cmd_init, cmd_list};
use passcrow::Error;
use protect::cmd_protect;
use recover::cmd_recover;

/// The one long option: allow plain http:// to hosts that are not
/// loopback (shares and escrow keys then cross the network in clear).
pub(crate) const ALLOW_PLAIN_HTTP: &str = "--allow-plain-http";

pub(crate) const TEST_SERVER: &str = "email, tel, sms via passcrow-test.mailpile.is";

pub(crate) enum CliError {
    Usage(String),
    Failed(String),
    /// Exit with this status; what to say was said.
    Exit(u8),
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Failed(e.to_string())
    }
}

pub(crate) type CliResult = Result<(), CliError>;

const GLOBAL_HELP: &str = "\
Global options:
    -C <path>  Directory for configuration (PASSCROW_CONFIG)
    -D <path>  Directory for recovery packs (PASSCROW_DATA)
    -H <path>  One directory for both (PASSCROW_HOME)
    --allow-plain-http
               Allow plain http:// servers that are not on loopback (shares
               and escrow keys then cross the network unencrypted)

Environment: PASSCROW_EPHEMERAL_KDF=sequential derives the ephemeral mode's
keys one at a time (1 GiB of memory at the peak instead of 2 GiB; slower).";

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
        "check" => "check [-b] [-x <DAYS>] [NAME...]\n\n    \
                    Ask each escrow's server whether it still holds it intact (no code is\n    \
                    sent, nobody is notified): one line per escrow and a verdict per pack\n    \
                    (all packs when no NAME), and whether the pack is due for review.\n    \
                    Exit status 0: every pack can be recovered; 1: one cannot;\n    \
                    3: it cannot be told (servers without the status method decide it).\n\n    \
                    -b            Batch mode: JSON output\n    \
                    -x <DAYS>     Escrows expiring within DAYS make a pack due (default 30)".to_string(),
        "help" => "help [COMMAND]".to_string(),
        _ => return None,
    };
    Some(format!("passcrow {body}\n\n{GLOBAL_HELP}"))
}

fn usage() -> String {
    format!(
        "passcrow [check|forget|help|init|list|protect|recover|renew]\n\n\
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
        "check" => cmd_check(rest),
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
            if m.contains("refusing plain HTTP") {
                eprintln!("(passcrow {cmd} {ALLOW_PLAIN_HTTP} allows it)");
            }
            ExitCode::from(1)
        }
        Err(CliError::Exit(s)) => ExitCode::from(s),
    }
}
