//! `init`, `list` and `forget`.

use std::io::Write;
use std::time::Duration;

use passcrow::client::create_private_dir;
use passcrow::policy::{Defaults, ServerChoice};

use crate::args::{client, dirs, Args};
use crate::{CliError, CliResult, TEST_SERVER};

pub(crate) fn local_time(ts: i64) -> (String, String) {
    use chrono::{Local, TimeZone};
    match Local.timestamp_opt(ts, 0).single() {
        Some(t) => (
            t.format("%Y-%m-%d").to_string(),
            t.format("%H:%M").to_string(),
        ),
        None => ("????-??-??".into(), "??:??".into()),
    }
}

pub(crate) fn cmd_init(args: &[String]) -> CliResult {
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

pub(crate) fn cmd_list(args: &[String]) -> CliResult {
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

pub(crate) fn cmd_forget(args: &[String]) -> CliResult {
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
