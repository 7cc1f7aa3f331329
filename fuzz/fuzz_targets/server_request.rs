//! Every server request type through the protocol core, no HTTP:
//! `Server::handle` over an in-memory SQLite store, a deliverer that
//! records the codes instead of sending them, and a fixed clock.
//!
//! Input: the first byte picks the method (`Method::ALL[(b & 7) % 6]`);
//! the rest is the body. With the top bit of the first byte set, the
//! fuzzer gets past AES-GCM: for `escrowrequest` the rest is the
//! *parameters* JSON, sealed here under a fixed key; for
//! `verificationrequest` / `recoveryrequest` it is the *escrow data* JSON
//! (what the client seals under its recovery key): it is escrowed for
//! free, a code is asked for, and for recovery that code is traded back,
//! then the escrow is deleted. Without the top bit, the body goes in as
//! it is; the server always holds one escrow at the fixed id
//! `KNOWN_ID` under `KNOWN_KEY`, so seeds can reach verification and
//! recovery.
//!
//! Invariants: no panic; every answer is an error answer (`{"error":
//! ...}`, which the client recognises; status 200, 413 or 429) or a 200
//! answer the client parses as that method's response type; in the sealed
//! mode, a verification that succeeded followed by recovery with the code
//! delivered succeeds and gives back the escrowed secret.
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use passcrow::proto::{
    self, DeletionResponse, EscrowResponse, RecoveryResponse, ServerPolicy, VerificationResponse,
};
use passcrow::server::{
    Answer, Config, Deliver, Method, Outgoing, Server, ServerResult, SqliteStorage,
};
use passcrow::testing::{b64encode, seal_with_nonce};
use passcrow::Key32;

const NOW: i64 = 1_800_000_000;
/// The escrow every fresh server holds (storage key, as `prefer-id`).
const KNOWN_ID: &str = "f00df00df00df00df00df00df00df00d";
/// Its recovery key: 32 bytes of 5 (`BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=`).
const KNOWN_KEY: [u8; 32] = [5; 32];
const PARAMS_KEY: [u8; 32] = [6; 32];
/// Calls before the server is built anew (bounds the store's growth).
const REBUILD_EVERY: u32 = 20_000;

#[derive(Default)]
struct Recorder {
    last_code: Mutex<Option<String>>,
}

impl Deliver for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn deliver(&self, msg: &Outgoing) -> ServerResult<()> {
        // Build the texts a real deliverer would send.
        let _ = (msg.subject(), msg.long_text(), msg.short_text());
        if let Some(c) = msg.code() {
            *self.last_code.lock().unwrap() = Some(c.to_string());
        }
        Ok(())
    }
}

struct Fixture {
    server: Server,
    rec: Arc<Recorder>,
    calls: u32,
}

fn seal(key: &[u8; 32], plain: &[u8]) -> String {
    seal_with_nonce(&Key32::from_bytes(*key), &[4; 16], plain).expect("seal")
}

fn escrow_request(params: &[u8], blob_b64: &str) -> String {
    serde_json::json!({
        "passcrow-escrow-request": "1.0",
        "parameters-key": Key32::from_bytes(PARAMS_KEY).to_b64(),
        "parameters": seal(&PARAMS_KEY, params),
        "escrow-data": [blob_b64],
    })
    .to_string()
}

fn free_params(prefer: Option<&str>) -> Vec<u8> {
    let mut p = serde_json::json!({
        "kind": "email", "expiration": NOW + 3600, "payment": "free:0",
    });
    if let Some(id) = prefer {
        p["prefer-id"] = id.into();
    }
    p.to_string().into_bytes()
}

fn build() -> Fixture {
    let mut cfg = Config::new("/nonexistent");
    cfg.verifications_per_hour = 1_000_000;
    let rec = Arc::new(Recorder::default());
    let mut d: BTreeMap<String, Arc<dyn Deliver>> = BTreeMap::new();
    for k in ["email", "mailto", "tel", "sms"] {
        d.insert(k.into(), rec.clone());
    }
    let mut server = Server::with_parts(
        cfg,
        Box::new(SqliteStorage::in_memory().expect("in-memory SQLite")),
        &Key32::from_bytes([1; 32]),
        d,
    );
    server.set_clock(Box::new(|| NOW));
    let esd = serde_json::json!({
        "description": "Fuzz secret", "secret": "1-abc",
        "verify": "email:a@example.org", "timeout": 1800,
    })
    .to_string();
    let req = escrow_request(
        &free_params(Some(KNOWN_ID)),
        &seal(&KNOWN_KEY, esd.as_bytes()),
    );
    let a = server.handle(Method::Escrow, req.as_bytes());
    assert!(!a.is_error(), "the known escrow: {}", a.body);
    Fixture {
        server,
        rec,
        calls: 0,
    }
}

fn fixture() -> &'static Mutex<Fixture> {
    static F: OnceLock<Mutex<Fixture>> = OnceLock::new();
    F.get_or_init(|| Mutex::new(build()))
}

/// The invariants every answer keeps. Error answers go out as 200 (the
/// reference client reads the message only then), 413 or 429.
fn check(method: Method, a: &Answer) {
    if a.is_error() {
        assert!(
            matches!(a.status, 200 | 413 | 429),
            "{method}: error answer with status {}: {}",
            a.status,
            a.body
        );
        return;
    }
    assert_eq!(
        a.status, 200,
        "{method}: status {} without an error: {}",
        a.status, a.body
    );
    let b = a.body.as_bytes();
    let ok = match method {
        Method::Policy => proto::parse::<ServerPolicy>(b, "policy").is_ok(),
        Method::Stats => serde_json::from_slice::<serde_json::Value>(b).is_ok(),
        Method::Escrow => proto::parse::<EscrowResponse>(b, "escrow").is_ok(),
        Method::Verification => proto::parse::<VerificationResponse>(b, "verify").is_ok(),
        Method::Recovery => proto::parse::<RecoveryResponse>(b, "recover").is_ok(),
        Method::Deletion => proto::parse::<DeletionResponse>(b, "delete").is_ok(),
        // Our extensions (the health check): JSON objects of their own.
        Method::Extensions | Method::Status => {
            serde_json::from_slice::<serde_json::Value>(b).is_ok_and(|v| v.is_object())
        }
    };
    assert!(
        ok,
        "{method}: 200 answer the client cannot parse: {}",
        a.body
    );
}

fn sealed_recovery(f: &Fixture, esd: &[u8], recover: bool) {
    let s = &f.server;
    let req = escrow_request(&free_params(None), &seal(&KNOWN_KEY, esd));
    let a = s.handle(Method::Escrow, req.as_bytes());
    check(Method::Escrow, &a);
    if a.is_error() {
        return;
    }
    let resp: EscrowResponse = proto::parse(a.body.as_bytes(), "escrow").unwrap();
    let id = resp.escrow_data_id;
    let key = Key32::from_bytes(KNOWN_KEY).to_b64();
    *f.rec.last_code.lock().unwrap() = None;
    let v = serde_json::json!({
        "passcrow-verification-request": "1.0", "prefix": "A",
        "escrow-data-id": id, "escrow-data-key": key,
    })
    .to_string();
    let a = s.handle(Method::Verification, v.as_bytes());
    check(Method::Verification, &a);
    if !a.is_error() && recover {
        let code = f
            .rec
            .last_code
            .lock()
            .unwrap()
            .clone()
            .expect("a code was delivered");
        let r = serde_json::json!({
            "passcrow-recovery-request": "1.0", "verification": code,
            "escrow-data-id": id, "escrow-data-key": key,
        })
        .to_string();
        let a = s.handle(Method::Recovery, r.as_bytes());
        check(Method::Recovery, &a);
        assert!(
            !a.is_error(),
            "recovery with the delivered code: {}",
            a.body
        );
        let got: RecoveryResponse = proto::parse(a.body.as_bytes(), "recover").unwrap();
        let want: serde_json::Value = serde_json::from_slice(esd).unwrap();
        assert_eq!(
            Some(got.escrow_secret.expose_secret()),
            want["secret"].as_str(),
            "the escrowed secret comes back"
        );
    }
    let d = serde_json::json!({"passcrow-deletion-request": "1.0", "escrow-data-id": id});
    let a = s.handle(Method::Deletion, d.to_string().as_bytes());
    check(Method::Deletion, &a);
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let method = Method::ALL[((sel & 7) % 6) as usize];
    let sealed = sel & 0x80 != 0;
    let mut f = fixture().lock().unwrap_or_else(|p| p.into_inner());
    f.calls += 1;
    if f.calls > REBUILD_EVERY {
        *f = build();
    }
    match (sealed, method) {
        (true, Method::Escrow) => {
            let blob = b64encode(&[0x42; 40]);
            let a = f
                .server
                .handle(method, escrow_request(body, &blob).as_bytes());
            check(method, &a);
        }
        (true, Method::Verification) => sealed_recovery(&f, body, false),
        (true, Method::Recovery) => sealed_recovery(&f, body, true),
        _ => {
            let a = f.server.handle(method, body);
            check(method, &a);
            if method == Method::Deletion && !a.is_error() {
                // The known escrow may be gone: start again.
                *f = build();
            }
        }
    }
});
