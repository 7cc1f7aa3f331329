//! Quickstart: a Passcrow server and client on one machine.
//!
//! ```text
//! cargo run --example quickstart --features server
//! ```
//!
//! Starts an escrow server in-process on a free loopback port (SQLite in a
//! temporary directory, codes "delivered" to a file instead of by e-mail),
//! protects a secret 2-of-3 across three identities, asks for
//! verification codes, reads them from the delivery file as a user would
//! read their mail, recovers, and prints the secret.

use std::error::Error;
use std::path::Path;

use passcrow::client::{Client, ClientConfig, ProtectOptions, Recovered};
use passcrow::server::{self, config::Config};

/// The last code delivered to `identity`, as the user would read it.
fn read_code(codes_file: &Path, identity: &str) -> Option<String> {
    let text = std::fs::read_to_string(codes_file).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| l.split_once('\t'))
        .find(|(who, _)| *who == identity)
        .map(|(_, code)| code.to_string())
}

fn main() -> Result<(), Box<dyn Error>> {
    let tmp = tempfile::tempdir()?;
    let codes = tmp.path().join("delivered-codes.txt");

    // 1. A server on 127.0.0.1:<free port>, data in a temporary directory.
    let handle = server::spawn(Config::for_testing(tmp.path().join("server"), &codes))?;
    let url = handle.url();
    println!("server listening on {url}");

    // 2. A client with its own directories.
    let home = tmp.path().join("client");
    std::fs::create_dir_all(&home)?;
    let mut client = Client::new(ClientConfig::new(&home, &home))?;
    client.set_log(std::sync::Arc::new(|line: &str| {
        println!("  client: {line}")
    }));

    // 3. Protect a secret: any 2 of these 3 identities can recover it.
    //    One day of escrow is free (longer lifetimes cost proof of work).
    let ids = [
        format!("alice@example.org via {url}"),
        format!("bob@example.org via {url}"),
        format!("+3545885522 via {url}"),
    ];
    let mut policy = client.make_policy(&ids, Some((2, 3)))?;
    policy.expiration_days = 1;
    let secret = b"correct horse battery staple";
    client.protect("wallet", secret, &policy, &ProtectOptions::default())?;
    println!("protected the secret of \"wallet\" (2 of 3 identities needed)");

    // 4. Forgot the password? Ask for codes.
    let pack = client.pack("wallet")?;
    let verification = client.verify(&pack)?;
    for h in &verification.hints {
        println!("a code starting with {} was sent to {}", h.prefix, h.hint);
    }

    // 5. "Check your mail": read two of the codes from the delivery file.
    let mut typed = vec![];
    for who in ["email:alice@example.org", "tel:+3545885522"] {
        let code = read_code(&codes, who).ok_or("no code was delivered")?;
        println!("{who} received code {code}");
        typed.push(code);
    }

    // 6. Recover.
    match client.recover(&pack, &typed)? {
        Recovered::Secret(s) => {
            println!(
                "recovered secret: {}",
                String::from_utf8_lossy(s.expose_secret())
            );
            assert_eq!(s.expose_secret(), secret);
        }
        Recovered::Pack { name, .. } => println!("recovered pack {name}"),
    }

    handle.shutdown();
    Ok(())
}
