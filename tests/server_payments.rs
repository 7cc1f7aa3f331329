//! Paying our server over real HTTP on loopback: a hashcash proof pays
//! for one escrow, in its one canonical spelling (`hashcash-B:%x-%x`, as
//! python-passcrow 0.0.7 and our client write it), and only when the
//! escrow is stored. Each attack here paid for extra escrows before
//! tokens were spent by what they prove, with the escrow.

mod common;

use std::path::Path;

use common::newest_code;
use passcrow::client::{Client, ClientConfig, ProtectOptions, Recovered};
use passcrow::payment;
use passcrow::server::config::HashcashOffer;
use passcrow::server::{self, Handle};
use passcrow::testing::{random_key, seal};

const BITS: u32 = 8;
const DAY: i64 = 86400;

/// A test server on loopback that sells 100 days for 8 bits of hashcash
/// and gives nothing away.
fn paying_server(dir: &Path) -> Handle {
    let mut cfg = common::backend::server_config(dir.join("server"), dir.join("codes.txt"));
    cfg.payment.free_seconds = 0;
    cfg.payment.hashcash = vec![HashcashOffer {
        bits: BITS,
        seconds: 100 * DAY,
    }];
    server::spawn(cfg).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Escrow data as a client would seal it (base64 text).
fn blob() -> String {
    let esd = serde_json::json!({
        "description": "Test secret", "secret": "1-abcdef",
        "verify": "email:alice@example.org", "timeout": 600,
    });
    seal(&random_key(), esd.to_string().as_bytes()).unwrap()
}

/// An escrow request for `blob` paid with `token`, plus `extra`
/// parameters.
fn request(blob: &str, token: &str, expiration: i64, extra: serde_json::Value) -> Vec<u8> {
    let mut params = serde_json::json!({
        "kind": "email", "expiration": expiration, "payment": token,
    });
    if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    let pkey = random_key();
    serde_json::json!({
        "passcrow-escrow-request": "1.0",
        "parameters-key": pkey.to_b64(),
        "parameters": seal(&pkey, params.to_string().as_bytes()).unwrap(),
        "escrow-data": [blob],
    })
    .to_string()
    .into_bytes()
}

fn post(url: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let (status, r) = match ureq::post(url)
        .set("Content-Type", "application/json")
        .send_bytes(body)
    {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(s, r)) => (s, r),
        Err(e) => panic!("{url}: {e}"),
    };
    let text = r.into_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
    )
}

fn escrow(url: &str, body: &[u8]) -> serde_json::Value {
    post(&format!("{url}/passcrow/escrowrequest"), body).1
}

fn escrows(url: &str) -> serde_json::Value {
    post(&format!("{url}/passcrow/stats"), b"{}").1["storage"]["escrows"].clone()
}

/// A proof of `BITS` bits for `blob` stamped `ts`, with a letter in its
/// counter (so that upper-casing the counter changes its spelling).
fn proof(blob: &str, ts: i64) -> u64 {
    (1u64..)
        .find(|&c| {
            format!("{c:x}").bytes().any(|b| b.is_ascii_alphabetic())
                && payment::hashcash_valid(BITS, blob.as_bytes(), c, ts as u64)
        })
        .unwrap()
}

/// The other spellings of one proof that a lenient parser took.
fn respellings(counter: u64, ts: i64) -> Vec<(&'static str, String)> {
    let b = BITS;
    vec![
        (
            "leading zero in the bits",
            format!("hashcash-0{b}:{counter:x}-{ts:x}"),
        ),
        (
            "plus sign in the bits",
            format!("hashcash-+{b}:{counter:x}-{ts:x}"),
        ),
        (
            "upper-case counter",
            format!("hashcash-{b}:{counter:X}-{ts:x}"),
        ),
        (
            "upper-case timestamp",
            format!("hashcash-{b}:{counter:x}-{ts:X}"),
        ),
        (
            "leading zero in the counter",
            format!("hashcash-{b}:0{counter:x}-{ts:x}"),
        ),
        (
            "two leading zeros in the counter",
            format!("hashcash-{b}:00{counter:x}-{ts:x}"),
        ),
        (
            "leading zero in the timestamp",
            format!("hashcash-{b}:{counter:x}-0{ts:x}"),
        ),
        (
            "plus sign in the counter",
            format!("hashcash-{b}:+{counter:x}-{ts:x}"),
        ),
        (
            "space before the counter",
            format!("hashcash-{b}: {counter:x}-{ts:x}"),
        ),
        (
            "space after the timestamp",
            format!("hashcash-{b}:{counter:x}-{ts:x} "),
        ),
        (
            "newline after the timestamp",
            format!("hashcash-{b}:{counter:x}-{ts:x}\n"),
        ),
        ("0x prefix", format!("hashcash-{b}:0x{counter:x}-{ts:x}")),
    ]
}

#[test]
fn a_hashcash_proof_pays_once_and_only_in_its_canonical_spelling() {
    let tmp = tempfile::tempdir().unwrap();
    let h = paying_server(tmp.path());
    let url = h.url();
    let blob = blob();
    let ts = now();
    let counter = proof(&blob, ts);
    let canonical = format!("hashcash-{BITS}:{counter:x}-{ts:x}");
    let exp = ts + 30 * DAY;
    let body = |token: &str| request(&blob, token, exp, serde_json::json!({}));

    // Before the canonical token is spent: each re-spelling is refused
    // (each paid for an escrow of its own before the fix).
    let accepted: Vec<String> = respellings(counter, ts)
        .into_iter()
        .filter(|(_, t)| escrow(&url, &body(t))["error-kind"] != "payment")
        .map(|(what, t)| format!("{what} ({t:?})"))
        .collect();
    assert!(accepted.is_empty(), "accepted: {accepted:#?}");
    assert_eq!(escrows(&url), 0);

    // The canonical spelling was not spent by any of them: it pays, once.
    let v = escrow(&url, &body(&canonical));
    assert_eq!(v["expiration"], exp, "{v}");
    assert_eq!(escrows(&url), 1);
    let v = escrow(&url, &body(&canonical));
    assert_eq!(v["error-kind"], "payment", "{v}");
    assert!(v["error"].as_str().unwrap().contains("already used"), "{v}");

    // After it is spent: no re-spelling pays either.
    let paid_again: Vec<String> = respellings(counter, ts)
        .into_iter()
        .filter(|(_, t)| escrow(&url, &body(t))["error-kind"] != "payment")
        .map(|(what, t)| format!("{what} ({t:?})"))
        .collect();
    assert!(paid_again.is_empty(), "paid again: {paid_again:#?}");
    // Nor the same proof with the escrow data split differently (the
    // proof is over the data the request carries, whatever its pieces).
    let (a, b) = blob.split_at(blob.len() / 2);
    let pkey = random_key();
    let params = serde_json::json!({"kind": "email", "expiration": exp, "payment": canonical});
    let split = serde_json::json!({
        "passcrow-escrow-request": "1.0",
        "parameters-key": pkey.to_b64(),
        "parameters": seal(&pkey, params.to_string().as_bytes()).unwrap(),
        "escrow-data": [a, b],
    });
    let v = escrow(&url, split.to_string().as_bytes());
    assert_eq!(v["error-kind"], "payment", "{v}");
    assert_eq!(escrows(&url), 1);
    h.shutdown();
}

#[test]
fn one_proof_sent_many_times_at_once_pays_once() {
    let tmp = tempfile::tempdir().unwrap();
    let h = paying_server(tmp.path());
    let url = h.url();
    let blob = blob();
    let ts = now();
    let counter = proof(&blob, ts);
    let exp = ts + 30 * DAY;
    let mut tokens = vec![format!("hashcash-{BITS}:{counter:x}-{ts:x}"); 8];
    tokens.extend(respellings(counter, ts).into_iter().map(|(_, t)| t));
    let bodies: Vec<Vec<u8>> = tokens
        .iter()
        .map(|t| request(&blob, t, exp, serde_json::json!({})))
        .collect();
    let barrier = std::sync::Barrier::new(bodies.len());
    let paid: usize = std::thread::scope(|s| {
        let hs: Vec<_> = bodies
            .iter()
            .map(|b| {
                let (barrier, url) = (&barrier, &url);
                s.spawn(move || {
                    barrier.wait();
                    usize::from(escrow(url, b)["expiration"] == exp)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(paid, 1, "one proof paid for {paid} escrows");
    assert_eq!(escrows(&url), 1);
    h.shutdown();
}

#[test]
fn a_refused_escrow_spends_no_token() {
    let tmp = tempfile::tempdir().unwrap();
    let h = paying_server(tmp.path());
    let url = h.url();
    let blob = blob();
    let ts = now();
    let counter = proof(&blob, ts);
    let token = format!("hashcash-{BITS}:{counter:x}-{ts:x}");
    let exp = ts + 30 * DAY;
    // Refused for reasons that are not the payment's.
    let v = escrow(
        &url,
        &request(
            &blob,
            &token,
            exp,
            serde_json::json!({"prefer-id": "NOT HEX"}),
        ),
    );
    assert_eq!(v["error-kind"], "bad-request", "{v}");
    let v = escrow(&url, &request(&blob, &token, ts - 1, serde_json::json!({})));
    assert_eq!(v["error-kind"], "payment", "{v}");
    assert!(v["error"].as_str().unwrap().contains("expiration"), "{v}");
    // A kind the server cannot deliver to.
    let mut body: serde_json::Value =
        serde_json::from_slice(&request(&blob, &token, exp, serde_json::json!({}))).unwrap();
    let pkey = random_key();
    let params = serde_json::json!({"kind": "signal", "expiration": exp, "payment": token});
    body["parameters-key"] = pkey.to_b64().into();
    body["parameters"] = seal(&pkey, params.to_string().as_bytes()).unwrap().into();
    let v = escrow(&url, body.to_string().as_bytes());
    assert_eq!(v["error-kind"], "unsupported", "{v}");
    assert_eq!(escrows(&url), 0);
    // The token is unspent: a good request pays with it, once.
    let good = request(
        &blob,
        &token,
        exp,
        serde_json::json!({"prefer-id": "00112233445566778899aabbccddeeff"}),
    );
    let v = escrow(&url, &good);
    assert_eq!(v["expiration"], exp, "{v}");
    assert_eq!(v["escrow-data-id"], "00112233445566778899aabbccddeeff");
    let v = escrow(&url, &good);
    assert!(v["error"].as_str().unwrap().contains("already used"), "{v}");
    h.shutdown();
}

#[test]
fn our_client_pays_hashcash() {
    let tmp = tempfile::tempdir().unwrap();
    let h = paying_server(tmp.path());
    let url = h.url();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let c = Client::new(ClientConfig::new(&home, &home)).unwrap();
    let ids = [format!("alice@example.org via {url}")];
    let mut policy = c.make_policy(&ids, Some((1, 1))).unwrap();
    policy.expiration_days = 30;
    let secret = b"paid for with work".to_vec();
    let p = c
        .protect("paid", &secret, &policy, &ProtectOptions::default())
        .unwrap();
    assert_eq!(p.pack.escrow.len(), 1);
    assert!(p.pack.escrow[0].response.expiration > now() + 29 * DAY);
    assert_eq!(escrows(&url), 1);
    let pack = c.pack("paid").unwrap();
    c.verify(&pack).unwrap();
    let code = newest_code(&tmp.path().join("codes.txt"), "email:alice@example.org").unwrap();
    match c.recover(&pack, &[code]).unwrap() {
        Recovered::Secret(s) => assert_eq!(s.expose_secret(), &secret[..]),
        Recovered::Pack { .. } => panic!("expected the secret"),
    }
    h.shutdown();
}
